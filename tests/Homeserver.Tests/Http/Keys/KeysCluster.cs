using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.Keys;

/// <summary>One 2-silo cluster shared by the keys, profile and directory HTTP test classes.</summary>
public sealed class KeysCluster : TwoSiloCluster
{
    public Task<MatrixTestClient> UserAsync(string prefix, TestSilo? silo = null) =>
        MatrixTestClient.RegisterAsync(silo ?? A, MatrixTestClient.UniqueLocalpart(prefix));
}

[CollectionDefinition(Name)]
public sealed class KeysCollection : ICollectionFixture<KeysCluster>
{
    public const string Name = "keys-profile-directory";
}

internal static class Api
{
    public const string V3 = "/_matrix/client/v3";

    public static string Room(string roomId) => $"{V3}/rooms/{MatrixTestClient.Escape(roomId)}";

    public static async Task<string> CreateRoomAsync(this MatrixTestClient client, JsonObject? body = null) =>
        (await client.PostAsync($"{V3}/createRoom", body ?? new JsonObject())).EnsureSuccess()["room_id"].GetValue<string>();

    public static async Task JoinAsync(this MatrixTestClient client, string roomId) =>
        (await client.PostAsync($"{V3}/join/{MatrixTestClient.Escape(roomId)}")).EnsureSuccess();

    /// <summary>A room both users are joined to (created by <paramref name="a"/>).</summary>
    public static async Task<string> SharedRoomAsync(MatrixTestClient a, MatrixTestClient b)
    {
        var roomId = await a.CreateRoomAsync(new JsonObject { ["invite"] = new JsonArray(b.UserId) });
        await b.JoinAsync(roomId);
        return roomId;
    }

    public static async Task<string> SyncTokenAsync(this MatrixTestClient client) =>
        (await client.GetAsync($"{V3}/sync?timeout=0")).EnsureSuccess()["next_batch"].GetValue<string>();

    public static IEnumerable<string> Strings(JsonNode? array) =>
        array is JsonArray a ? a.Select(n => n!.GetValue<string>()) : [];

    public static void AssertError(MatrixResponse r, int status, string errcode)
    {
        Assert.True(r.StatusCode == status && r.ErrCode == errcode, $"{status} {errcode} expected, got {r.StatusCode} {r.Text}");
    }
}

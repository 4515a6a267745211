using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.Keys;

/// <summary>One 2-silo cluster shared by the keys, profile and directory HTTP test classes.</summary>
public sealed class KeysCluster : TwoSiloCluster;

[CollectionDefinition(Name)]
public sealed class KeysCollection : ICollectionFixture<KeysCluster>
{
    public const string Name = "keys-profile-directory";
}

internal static class Api
{
    /// <summary>A room both users are joined to (created by <paramref name="a"/>).</summary>
    public static async Task<string> SharedRoomAsync(MatrixTestClient a, MatrixTestClient b)
    {
        var roomId = await a.CreateRoomAsync(new JsonObject { ["invite"] = new JsonArray(b.UserId) });
        await b.JoinAsync(roomId);
        return roomId;
    }

    public static async Task<string> SyncTokenAsync(this MatrixTestClient client) =>
        (await client.GetAsync($"{MatrixPaths.V3}/sync?timeout=0")).EnsureSuccess()["next_batch"].GetValue<string>();

    public static IEnumerable<string> Strings(JsonNode? array) =>
        array is JsonArray a ? a.Select(n => n!.GetValue<string>()) : [];
}

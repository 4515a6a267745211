using System.Text.Json.Nodes;
using Homeserver.Streams;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.UserStreams;

/// <summary>One 2-silo cluster shared by the user-stream HTTP test classes; users register on silo 0.</summary>
public sealed class UserStreamsHttpCluster : TwoSiloCluster
{
    public Task<MatrixTestClient> UserAsync(string prefix) => MatrixTestClient.RegisterAsync(A, MatrixTestClient.UniqueLocalpart(prefix));

    /// <summary>Waits until silo B has applied everything silo A had applied.</summary>
    public async Task SettleAsync()
    {
        var target = A.Get<StreamNotifier>().Current;
        Assert.True(await B.Get<StreamNotifier>().WaitForTokenAsync(target, TimeSpan.FromSeconds(10)), "silo B did not catch up");
    }
}

[CollectionDefinition(Name)]
public sealed class UserStreamsHttpCollection : ICollectionFixture<UserStreamsHttpCluster>
{
    public const string Name = "user-streams-http";
}

internal static class UserStreamPaths
{
    public const string V3 = "/_matrix/client/v3";
    public static string E(string segment) => MatrixTestClient.Escape(segment);
    public static string Room(string roomId) => $"{V3}/rooms/{E(roomId)}";

    public static async Task<string> CreateRoomAsync(this MatrixTestClient client, object? body = null) =>
        (await client.PostAsync($"{V3}/createRoom", body ?? new JsonObject())).EnsureSuccess()["room_id"]!.GetValue<string>();

    public static async Task<string> SendTextAsync(this MatrixTestClient client, string roomId, string body) =>
        (await client.PutAsync($"{Room(roomId)}/send/m.room.message/{Guid.NewGuid():N}",
            new JsonObject { ["msgtype"] = "m.text", ["body"] = body })).EnsureSuccess()["event_id"]!.GetValue<string>();

    public static void AssertError(MatrixResponse r, int status, string errcode) =>
        Assert.True(r.StatusCode == status && r.ErrCode == errcode, $"expected {status} {errcode}, got {r.StatusCode}: {r.Text}");
}

internal static class SyncHttp
{
    /// <summary>GET /sync on the client's silo; <paramref name="since"/> null for an initial sync.</summary>
    public static async Task<MatrixResponse> SyncAsync(this MatrixTestClient client, string? since = null, int timeoutMs = 0, string? extra = null)
    {
        var query = $"timeout={timeoutMs}" + (since is null ? "" : $"&since={Uri.EscapeDataString(since)}") + (extra ?? "");
        return (await client.GetAsync($"{UserStreamPaths.V3}/sync?{query}")).EnsureSuccess();
    }

    public static string NextBatch(this MatrixResponse r) => r["next_batch"].GetValue<string>();

    public static JsonArray Events(this MatrixResponse r, string section) => r[section]["events"]!.AsArray();

    public static JsonArray RoomEvents(this MatrixResponse r, string roomId, string section) =>
        r.Body?["rooms"]?["join"]?[roomId]?[section]?["events"]?.AsArray() ?? [];
}

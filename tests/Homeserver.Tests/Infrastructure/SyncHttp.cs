using System.Text.Json.Nodes;

namespace Homeserver.Tests.Infrastructure;

/// <summary>/sync from a test client and the parts of its answer tests read.</summary>
internal static class SyncHttp
{
    /// <summary>GET /sync on the client's silo; <paramref name="since"/> null for an initial sync.</summary>
    public static async Task<MatrixResponse> SyncAsync(this MatrixTestClient client, string? since = null, int timeoutMs = 0, string? extra = null)
    {
        var query = $"timeout={timeoutMs}" + (since is null ? "" : $"&since={Uri.EscapeDataString(since)}") + (extra ?? "");
        return (await client.GetAsync($"{MatrixPaths.V3}/sync?{query}")).EnsureSuccess();
    }

    public static string NextBatch(this MatrixResponse r) => r["next_batch"].GetValue<string>();

    public static JsonArray Events(this MatrixResponse r, string section) => r[section]["events"]!.AsArray();

    public static JsonArray RoomEvents(this MatrixResponse r, string roomId, string section) =>
        r.Body?["rooms"]?["join"]?[roomId]?[section]?["events"]?.AsArray() ?? [];
}

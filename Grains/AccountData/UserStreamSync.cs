using System.Text.Json;
using System.Text.Json.Nodes;
using Homeserver.Streams;
using Homeserver.Sync;

namespace Homeserver.AccountData;

/// <summary>
/// What the sync sections of the per-user and ephemeral streams share: their single writer's position in a token,
/// the response arrays they add to, and appending to their writer. These streams have one writer (writer 0).
/// </summary>
public static class UserStreamSync
{
    public const int Writer = 0;

    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>The position of <paramref name="stream"/> in the sync's <c>since</c> token (0 for an initial sync).</summary>
    public static long Since(SyncContext context, string stream) => context.Since?.Get(stream, Writer) ?? 0;

    public static long To(SyncContext context, string stream) => context.To.Get(stream, Writer);

    /// <summary><c>response.{section}.events</c>, created when missing.</summary>
    public static JsonArray Events(JsonObject parent, string section)
    {
        if (parent[section] is not JsonObject holder) parent[section] = holder = new JsonObject();
        if (holder["events"] is not JsonArray events) holder["events"] = events = new JsonArray();
        return events;
    }

    public static async Task<long> AppendAsync(IGrainFactory grains, string stream, StreamRow[] rows)
    {
        if (rows.Length == 0) return 0;
        var result = await grains.GetGrain<IStreamWriterGrain>(StreamNames.WriterKey(stream, Writer)).AppendAsync(rows);
        return result.LastPosition;
    }

    public static StreamRow Row<T>(string kind, string key, T payload) => new(kind, key, JsonSerializer.Serialize(payload, Json));

    public static T Read<T>(StreamEntry entry) =>
        JsonSerializer.Deserialize<T>(entry.Payload, Json) ?? throw new InvalidOperationException($"Empty {entry.Kind} row");

    public static JsonNode ParseJson(string json) => JsonNode.Parse(json) ?? new JsonObject();
}

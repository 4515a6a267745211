using System.Text.Json;
using System.Text.Json.Nodes;

namespace Homeserver.Rooms;

/// <summary>
/// Turns stored events into the client format (spec "ClientEvent"): the federation-only keys go, <c>unsigned.age</c>
/// is computed now, and the sender's own device gets its <c>unsigned.transaction_id</c> back.
/// </summary>
public static class RoomEventFormat
{
    private static readonly string[] FederationOnlyKeys =
        ["auth_events", "prev_events", "hashes", "signatures", "depth", "origin", "prev_state", "membership"];

    /// <param name="ev">The stored event.</param>
    /// <param name="userId">The requesting user (with <paramref name="deviceId"/>: whether to add transaction_id).</param>
    /// <param name="includeRoomId">False for /sync, where events are grouped under their room.</param>
    public static JsonObject ToClient(StoredEvent ev, string? userId = null, string? deviceId = null, bool includeRoomId = true)
    {
        var json = JsonNode.Parse(ev.Utf8Json) as JsonObject ?? new JsonObject();
        foreach (var key in FederationOnlyKeys) json.Remove(key);
        if (!includeRoomId) json.Remove("room_id");
        var unsigned = json["unsigned"] as JsonObject ?? new JsonObject();
        unsigned["age"] = Math.Max(0, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - ev.OriginServerTs);
        if (ev.TxnId is not null && ev.DeviceId is not null && userId == ev.Sender && deviceId == ev.DeviceId)
            unsigned["transaction_id"] = ev.TxnId;
        json["unsigned"] = unsigned;
        return json;
    }

    /// <summary>The federation format (a filter's <c>event_format: federation</c>): the event as stored and signed, with
    /// the same <c>unsigned</c> a client gets.</summary>
    public static JsonObject ToFederation(StoredEvent ev, string? userId = null, string? deviceId = null)
    {
        var json = JsonNode.Parse(ev.Utf8Json) as JsonObject ?? new JsonObject();
        json["unsigned"] = ToClient(ev, userId, deviceId)["unsigned"]!.DeepClone();
        return json;
    }

    /// <summary>The client format of an event being built (no age: it is new), e.g. for <c>redacted_because</c>.</summary>
    public static JsonObject ToClient(JsonObject ev)
    {
        var copy = (JsonObject)ev.DeepClone();
        foreach (var key in FederationOnlyKeys) copy.Remove(key);
        return copy;
    }

    public static JsonArray ToClientArray(IEnumerable<StoredEvent> events, string? userId = null, string? deviceId = null)
    {
        var array = new JsonArray();
        foreach (var e in events) array.Add(ToClient(e, userId, deviceId));
        return array;
    }

    /// <summary>A string field of an event's content without building a DOM.</summary>
    public static string? ContentString(string eventJson, string field) =>
        ContentString(System.Text.Encoding.UTF8.GetBytes(eventJson), field);

    /// <summary>A string field of an event's content, read from its UTF-8 JSON (<see cref="StoredEvent.Utf8Json"/>).</summary>
    public static string? ContentString(ReadOnlyMemory<byte> eventJson, string field)
    {
        using var doc = JsonDocument.Parse(eventJson);
        return doc.RootElement.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.Object
               && content.TryGetProperty(field, out var value) && value.ValueKind == JsonValueKind.String
            ? value.GetString()
            : null;
    }

    /// <summary>The event's content as JSON text ("{}" when it has none).</summary>
    public static string ContentJson(string eventJson)
    {
        using var doc = JsonDocument.Parse(eventJson);
        return doc.RootElement.TryGetProperty("content", out var content) ? content.GetRawText() : "{}";
    }
}

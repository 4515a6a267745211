using System.Text.Json.Nodes;

namespace Homeserver.Matrix;

/// <summary>
/// The redaction algorithm (spec: room versions, "Redactions"). It matters beyond deleting content: the event id is the
/// hash of the redacted form, so what is kept must match every other server byte for byte.
/// </summary>
public static class Redaction
{
    // v1..v10 keep these top-level keys.
    private static readonly HashSet<string> TopLevelKeysV1 =
    [
        "event_id", "type", "room_id", "sender", "state_key", "content", "hashes", "signatures", "depth",
        "prev_events", "prev_state", "auth_events", "origin", "origin_server_ts", "membership",
    ];

    // v11 stops protecting origin, membership and prev_state (MSC2176): servers never relied on them.
    private static readonly HashSet<string> TopLevelKeysV11 =
    [
        "event_id", "type", "room_id", "sender", "state_key", "content", "hashes", "signatures", "depth",
        "prev_events", "auth_events", "origin_server_ts",
    ];

    /// <summary>
    /// Returns the redacted copy of <paramref name="ev"/> for the given room version. The input is never changed.
    /// <c>unsigned</c> is dropped: the caller re-adds <c>unsigned.redacted_because</c> when serving the event.
    /// </summary>
    public static JsonObject Redact(JsonObject ev, string roomVersion)
    {
        var version = RoomVersions.Number(roomVersion);
        var topLevel = version >= 11 ? TopLevelKeysV11 : TopLevelKeysV1;

        var result = new JsonObject();
        foreach (var (key, value) in ev)
        {
            if (key == "content" || !topLevel.Contains(key)) continue;
            result[key] = value?.DeepClone();
        }

        var type = ev["type"] is JsonValue t && t.TryGetValue<string>(out var s) ? s : null;
        result["content"] = ev["content"] is JsonObject content && type is not null
            ? RedactContent(content, type, version)
            : new JsonObject();
        return result;
    }

    private static JsonObject RedactContent(JsonObject content, string type, int version)
    {
        switch (type)
        {
            case "m.room.member":
            {
                var kept = Keep(content, version >= 9 ? ["membership", "join_authorised_via_users_server"] : ["membership"]);
                // v11 keeps the signed third-party-invite proof so redacted invites can still be authorised.
                if (version >= 11 && content["third_party_invite"] is JsonObject tpi && tpi.ContainsKey("signed"))
                    kept["third_party_invite"] = new JsonObject { ["signed"] = tpi["signed"]?.DeepClone() };
                return kept;
            }
            case "m.room.create":
                // v11 keeps everything: room_version, predecessor and type would otherwise be lost (MSC2176).
                return version >= 11 ? (JsonObject)content.DeepClone() : Keep(content, ["creator"]);
            case "m.room.join_rules":
                return Keep(content, version >= 8 ? ["join_rule", "allow"] : ["join_rule"]);
            case "m.room.power_levels":
                return Keep(content, version >= 11
                    ? ["ban", "events", "events_default", "invite", "kick", "redact", "state_default", "users", "users_default"]
                    : ["ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default"]);
            case "m.room.history_visibility":
                return Keep(content, ["history_visibility"]);
            case "m.room.aliases" when version <= 5:
                // Aliases were auth-relevant up to v5 and dropped from the list in v6 (MSC2432).
                return Keep(content, ["aliases"]);
            case "m.room.redaction" when version >= 11:
                // v11 moved "redacts" into content, so it must survive for the redaction to stay meaningful.
                return Keep(content, ["redacts"]);
            default:
                return new JsonObject();
        }
    }

    private static JsonObject Keep(JsonObject content, string[] keys)
    {
        var kept = new JsonObject();
        foreach (var key in keys)
            if (content.TryGetPropertyValue(key, out var value))
                kept[key] = value?.DeepClone();
        return kept;
    }
}

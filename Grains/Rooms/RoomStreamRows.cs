using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Homeserver.Streams;

namespace Homeserver.Rooms;

/// <summary>
/// The rows rooms append to the <c>events</c> stream. <see cref="RoomEventRow"/> (kind <c>room_event</c>, key: the
/// room id) carries a whole event and what its persister writes with it; <see cref="MemberNoticeRow"/> (kind
/// <c>room_member_notice</c>, key: the target user id; of the domain rows only a join's end of the user's room peeks,
/// <c>Sync.RoomPeeksEndedByJoinPersister</c>) follows every membership event so that a user's waiters wake on invites
/// and joins to rooms they are not yet in; <see cref="ForgetRow"/> (kind
/// <c>room_forget</c>, key: the user id) hides a left room from the user; <see cref="RoomPurgeRow"/> (kind
/// <c>room_purge</c>, key: the room id) deletes the room from the database (an admin's room deletion).
/// </summary>
public static class RoomStreamRows
{
    public const string EventKind = "room_event";
    public const string MemberNoticeKind = "room_member_notice";
    public const string ForgetKind = "room_forget";
    public const string PurgeKind = "room_purge";

    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull,
    };

    public static StreamRow Event(RoomEventRow row) => new(EventKind, row.RoomId, Serialize(row));

    public static StreamRow MemberNotice(MemberNoticeRow row) => new(MemberNoticeKind, row.UserId, Serialize(row));

    public static StreamRow Forget(ForgetRow row) => new(ForgetKind, row.UserId, JsonSerializer.Serialize(row, Json));

    public static StreamRow Purge(RoomPurgeRow row) => new(PurgeKind, row.RoomId, JsonSerializer.Serialize(row, Json));

    public static T Parse<T>(string payload) =>
        Decoded.TryGetValue(payload, out var decoded) && decoded is T row ? row
        : JsonSerializer.Deserialize<T>(payload, Json) ?? throw new InvalidOperationException($"Empty {typeof(T).Name} payload");

    /// <summary>
    /// The records this process serialised into event and notice payloads, by the payload string itself (its identity,
    /// not its value). The events writer's persister and this silo's reader are handed that very string (the room's
    /// grain lives on its writer's silo, and calls inside a silo pass immutable records by reference), so they take
    /// the record back instead of parsing its JSON, and with it the escaped event JSON, again; rows that crossed silos
    /// or were read from the log are other strings and are parsed. Entries go with their payloads (weak keys). The
    /// records are immutable and equal to what parsing gives.
    /// </summary>
    private static readonly ConditionalWeakTable<string, object> Decoded = new();

    private static string Serialize<T>(T row) where T : class
    {
        var payload = JsonSerializer.Serialize(row, Json);
        Decoded.AddOrUpdate(payload, row);
        return payload;
    }
}

/// <summary>An event and the side effects its persister applies in the same transaction.</summary>
/// <param name="Json">The event as stored (see <see cref="StoredEvent.Json"/>).</param>
/// <param name="Membership">For <c>m.room.member</c>: the new membership of <c>state_key</c>.</param>
/// <param name="Redacts">For redactions that apply: the target, whose stored JSON becomes <paramref name="RedactedJson"/>.</param>
/// <param name="RedactsState">The target is a state event (its room's state caches must go).</param>
/// <param name="Room">Only on a create event: the <c>rooms</c> row.</param>
/// <param name="Relation">The event's own relation to another (indexed in <c>event_relations</c>).</param>
/// <param name="Search">What search finds the event by (indexed in <c>event_search</c>).</param>
/// <param name="RedactsRelationTo">For a redaction whose target had a relation: the target's parent, whose
/// aggregations change.</param>
public sealed record RoomEventRow(
    string EventId,
    string RoomId,
    string Type,
    string? StateKey,
    string Sender,
    long OriginServerTs,
    long Topological,
    string Json,
    string? DeviceId = null,
    string? TxnId = null,
    string? Membership = null,
    string? Redacts = null,
    string? RedactedJson = null,
    string? RedactedBecause = null,
    bool RedactsState = false,
    RoomCreatedRow? Room = null,
    EventRelation? Relation = null,
    string? RedactsRelationTo = null,
    EventSearchText? Search = null);

/// <summary>The text server-side search finds an event by (spec "Server Side Search": <c>content.body</c> of messages,
/// <c>content.name</c> and <c>content.topic</c> of the room's name and topic).</summary>
public sealed record EventSearchText(string Key, string Text)
{
    public static EventSearchText? Of(string type, string? stateKey, JsonObject? content)
    {
        var (key, field) = (type, stateKey) switch
        {
            ("m.room.message", null) => ("content.body", "body"),
            ("m.room.name", "") => ("content.name", "name"),
            ("m.room.topic", "") => ("content.topic", "topic"),
            _ => (null, null),
        };
        if (key is null || content?[field!] is not JsonValue v || !v.TryGetValue<string>(out var text) || text.Length == 0) return null;
        return new EventSearchText(key, text);
    }
}

/// <summary>An event's <c>m.relates_to</c> (spec "Forming relationships between events"): the parent, the kind of
/// relation, and an annotation's key.</summary>
public sealed record EventRelation(string ParentId, string RelType, string? Key)
{
    /// <summary>The relation an event's content declares, or null (no <c>m.relates_to</c>, or one without a
    /// <c>rel_type</c> and <c>event_id</c>: a bare reply's <c>m.in_reply_to</c> is not a relation).</summary>
    public static EventRelation? Of(JsonObject? content)
    {
        if (content?["m.relates_to"] is not JsonObject relates) return null;
        if (relates["rel_type"] is not JsonValue t || !t.TryGetValue<string>(out var relType) || relType.Length == 0) return null;
        if (relates["event_id"] is not JsonValue p || !p.TryGetValue<string>(out var parent) || parent.Length == 0) return null;
        var key = relType == "m.annotation" && relates["key"] is JsonValue k && k.TryGetValue<string>(out var text) ? text : null;
        return new EventRelation(parent, relType, key);
    }
}

public sealed record RoomCreatedRow(string RoomVersion, string Creator, bool IsPublic);

public sealed record MemberNoticeRow(string RoomId, string UserId, string Membership, string EventId);

public sealed record ForgetRow(string RoomId, string UserId);

/// <param name="Users">Everyone with a membership of the room, whose room lists the purge changes.</param>
public sealed record RoomPurgeRow(string RoomId, string[] Users);

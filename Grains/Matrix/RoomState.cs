using System.Buffers;
using System.Collections.Immutable;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Homeserver.Matrix;

/// <summary>
/// A room's state at one point: the latest event for each <c>(type, state_key)</c>. The events themselves are
/// treated as immutable, and the map is an immutable one, so a clone costs nothing and a change to it costs O(log n):
/// a join into a room of 10,000 members does not copy the other members' entries.
/// </summary>
/// <remarks>
/// Member events, nearly all of a big room's state, are held compactly: what the writer reads of them (event id,
/// sender, content) as UTF-8 JSON beside their membership, and parsed only when a caller asks for the event (a
/// membership change reads the previous one's content for <c>unsigned.prev_content</c>; a message reads only its
/// sender's event id). The rest of a stored member event (hashes, signatures, auth and prev events, unsigned) is three
/// quarters of its bytes and nothing here reads it: a room grain holds every member's, so 300 rooms of 300 members held
/// 55 MB of whole member events. Rooms of versions 1 and 2 keep them whole, as their events name their auth events by
/// the reference hash of the whole event. The few other state events (create, power levels, join rules, ...) stay
/// parsed: the auth rules read them for every event.
/// </remarks>
public sealed class RoomState
{
    private ImmutableDictionary<(string Type, string StateKey), Entry> _events;
    private PowerLevels? _powerLevels;
    // Versions 1 and 2 reference auth events by the hash of the whole event, so their member events are kept whole.
    private bool _wholeMemberEvents;

    /// <summary>One state event: parsed (<see cref="Object"/>), or a member event as UTF-8 JSON with its membership:
    /// its summary (<c>{"event_id","sender","content"}</c>, event id first) or, in rooms that need it, the whole event
    /// with its event id beside it. Immutable, so clones share it.</summary>
    private sealed class Entry
    {
        public readonly JsonObject? Object;
        public readonly byte[]? Utf8;
        public readonly bool IsSummary;
        public readonly string? Membership;
        private readonly string? _wholeEventId;

        public Entry(JsonObject ev) => Object = ev;

        private Entry(byte[] utf8, bool isSummary, string? membership, string? wholeEventId) =>
            (Utf8, IsSummary, Membership, _wholeEventId) = (utf8, isSummary, membership, wholeEventId);

        /// <summary>A member event from its stored JSON (<paramref name="scan"/> being what <see cref="ScanTopLevel"/>
        /// read of it): its summary, or the whole event where the room needs it.</summary>
        public static Entry Member(byte[] utf8, TopLevel scan, bool whole)
        {
            if (whole) return new(utf8, false, scan.Membership, scan.EventId);
            ReadOnlySpan<byte> content = utf8.AsSpan(scan.Content);
            return new(Summary(scan.EventId, scan.Sender, content.IsEmpty ? "null"u8 : content), true, scan.Membership, null);
        }

        public string? EventId => Object is { } o ? GetString(o, "event_id") : IsSummary ? SummaryEventId(Utf8!) : _wholeEventId;

        /// <summary>The event as a tree of its own (a copy: changing it leaves the state as it was); a summary comes
        /// back with its type and state key.</summary>
        public JsonObject Parse(string stateKey)
        {
            if (Object is not null) return Object;
            var ev = JsonNode.Parse(Utf8!)!.AsObject();
            if (IsSummary)
            {
                ev["type"] = "m.room.member";
                ev["state_key"] = stateKey;
            }
            return ev;
        }
    }

    public RoomState() => _events = ImmutableDictionary<(string, string), Entry>.Empty;

    public RoomState(IEnumerable<JsonObject> events) : this()
    {
        // The create event first: it decides how member events are held.
        foreach (var ev in events.OrderBy(e => GetString(e, "type") == "m.room.create" ? 0 : 1)) Set(ev);
    }

    private RoomState(ImmutableDictionary<(string, string), Entry> events, PowerLevels? powerLevels, bool wholeMemberEvents)
    {
        _events = events;
        _powerLevels = powerLevels;
        _wholeMemberEvents = wholeMemberEvents;
    }

    /// <summary>The state of these events, given as their stored JSON: member events are kept as their summaries (or
    /// whole, in rooms of versions 1 and 2) without building a tree of them (a room grain loading a room of 10,000
    /// members parses the 10 others).</summary>
    public static RoomState FromJson(IEnumerable<string> events)
    {
        var builder = ImmutableDictionary.CreateBuilder<(string, string), Entry>();
        var members = new List<(byte[] Utf8, TopLevel Scan)>();
        JsonObject? create = null;
        foreach (var json in events)
        {
            var utf8 = Encoding.UTF8.GetBytes(json);
            var scan = ScanTopLevel(utf8);
            if (scan.Type is null || scan.StateKey is not { } stateKey) throw new ArgumentException("State event has no type or state_key", nameof(events));
            var type = EventStrings.Type(scan.Type);
            if (type == "m.room.member") members.Add((utf8, scan));
            else
            {
                var ev = JsonNode.Parse(utf8)!.AsObject();
                builder[(type, stateKey)] = new Entry(ev);
                if (type == "m.room.create") create = ev;
            }
        }
        // The create event decides how member events are held, and it may come after them.
        var whole = NeedsWholeMemberEvents(create);
        foreach (var (utf8, scan) in members) builder[("m.room.member", scan.StateKey!)] = Entry.Member(utf8, scan, whole);
        return new RoomState(builder.ToImmutable(), null, whole);
    }

    public int Count => _events.Count;

    /// <summary>All current state events, in no particular order (parses every member event: for small rooms and
    /// tests; the writer's paths use <see cref="Keys"/>, <see cref="Members"/> and <see cref="Membership"/>).</summary>
    public IEnumerable<JsonObject> Events => _events.Select(kv => kv.Value.Parse(kv.Key.StateKey));

    /// <summary>All entries with their keys, in no particular order (parses every member event, as <see cref="Events"/>).</summary>
    public IEnumerable<KeyValuePair<(string Type, string StateKey), JsonObject>> Entries =>
        _events.Select(kv => KeyValuePair.Create(kv.Key, kv.Value.Parse(kv.Key.StateKey)));

    /// <summary>The (type, state key) of every state event, without reading the events.</summary>
    public IEnumerable<(string Type, string StateKey)> Keys => _events.Keys;

    /// <summary>The event, parsed: a member event is parsed anew on each call, so callers that need it more than
    /// once keep it. Outside rooms of versions 1 and 2, a member event has only its type, state key, event id, sender
    /// and content (what the writer reads: the auth rules, <c>unsigned.prev_content</c>, a re-sent state).</summary>
    public JsonObject? Get(string type, string stateKey) => _events.TryGetValue((type, stateKey), out var e) ? e.Parse(stateKey) : null;

    /// <summary>The event id of the state event at (type, state key), without parsing a member event.</summary>
    public string? GetEventId(string type, string stateKey) =>
        _events.TryGetValue((type, stateKey), out var e) ? e.EventId : null;

    /// <summary>Records <paramref name="ev"/> as the state for its <c>(type, state_key)</c>, replacing any previous one.</summary>
    public void Set(JsonObject ev) => Set(ev, null);

    /// <summary>As <see cref="Set(JsonObject)"/>, with the event's JSON as stored when the caller has it (a member
    /// event is kept as those bytes, without encoding it again).</summary>
    public void Set(JsonObject ev, string? json)
    {
        var type = GetString(ev, "type") ?? throw new ArgumentException("State event has no type", nameof(ev));
        var stateKey = GetString(ev, "state_key") ?? throw new ArgumentException("Event has no state_key", nameof(ev));
        Entry entry;
        if (type != "m.room.member") entry = new Entry(ev);
        else
        {
            var utf8 = json is null ? JsonSerializer.SerializeToUtf8Bytes(ev) : Encoding.UTF8.GetBytes(json);
            entry = Entry.Member(utf8, ScanTopLevel(utf8), _wholeMemberEvents);
        }
        _events = _events.SetItem((type, stateKey), entry);
        if (type is "m.room.power_levels" or "m.room.create") _powerLevels = null;
        if (type == "m.room.create") _wholeMemberEvents = NeedsWholeMemberEvents(ev);
    }

    public bool Remove(string type, string stateKey)
    {
        if (type is "m.room.power_levels" or "m.room.create") _powerLevels = null;
        var before = _events;
        _events = _events.Remove((type, stateKey));
        return _events != before;
    }

    public RoomState Clone() => new(_events, _powerLevels, _wholeMemberEvents);

    public JsonObject? CreateEvent => Get("m.room.create", "");

    /// <summary>The room version from the create event; "1" when the create event does not name one (spec default).</summary>
    public string RoomVersion => CreateEvent?["content"] is JsonObject c && GetString(c, "room_version") is { } v ? v : "1";

    /// <summary>The creator: the create event's sender from v11, its <c>content.creator</c> before.</summary>
    public string? Creator
    {
        get
        {
            var create = CreateEvent;
            if (create is null) return null;
            if (RoomVersions.IsKnown(RoomVersion) && RoomVersions.ImplicitRoomCreator(RoomVersion))
                return GetString(create, "sender");
            return create["content"] is JsonObject c ? GetString(c, "creator") : null;
        }
    }

    /// <summary>The room's power levels (spec defaults when it has no power levels event). Cached until state changes.</summary>
    public PowerLevels PowerLevels => _powerLevels ??= new PowerLevels(
        Get("m.room.power_levels", "")?["content"] as JsonObject,
        Creator,
        RoomVersions.IsKnown(RoomVersion) ? RoomVersion : RoomVersions.Default);

    /// <summary>The join rule; "invite" when unset, as the auth rules and Synapse assume.</summary>
    public string JoinRule =>
        Get("m.room.join_rules", "")?["content"] is JsonObject c && GetString(c, "join_rule") is { } rule ? rule : "invite";

    /// <summary>The user's membership ("join", "invite", "leave", "ban", "knock"), or null if they never had one.</summary>
    public string? Membership(string userId) =>
        _events.TryGetValue(("m.room.member", userId), out var e) ? MembershipOf(e) : null;

    /// <summary>The users whose membership is <paramref name="membership"/>.</summary>
    public IEnumerable<string> Members(string membership = "join")
    {
        foreach (var ((type, stateKey), e) in _events)
            if (type == "m.room.member" && MembershipOf(e) == membership)
                yield return stateKey;
    }

    // Only member events are held as bytes; anything else keeps its tree.
    private static string? MembershipOf(Entry e) =>
        e.Object is { } o ? (o["content"] is JsonObject c ? GetString(c, "membership") : null) : e.Membership;

    /// <summary>What <see cref="ScanTopLevel"/> reads of an event's JSON: its top-level strings, content.membership,
    /// and where its content is in the bytes (empty without one).</summary>
    private readonly record struct TopLevel(string? Type, string? StateKey, string? EventId, string? Sender, string? Membership, Range Content);

    /// <summary>Reads type, state_key, event_id, sender and content.membership of an event's JSON, and where its content
    /// is, without building a tree.</summary>
    private static TopLevel ScanTopLevel(byte[] utf8)
    {
        var reader = new Utf8JsonReader(utf8);
        string? type = null, stateKey = null, eventId = null, sender = null, membership = null;
        var content = default(Range);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject) throw new ArgumentException("State event is not an object");
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("content"u8))
            {
                reader.Read();
                var start = (int)reader.TokenStartIndex;
                if (reader.TokenType == JsonTokenType.StartObject)
                    while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                    {
                        var isMembership = reader.ValueTextEquals("membership"u8);
                        reader.Read();
                        if (isMembership && reader.TokenType == JsonTokenType.String) membership = EventStrings.Membership(reader.GetString()!);
                        else reader.Skip();
                    }
                else reader.Skip();
                content = start..(int)reader.BytesConsumed;
                continue;
            }
            var field = reader.ValueTextEquals("type"u8) ? 1 : reader.ValueTextEquals("state_key"u8) ? 2
                : reader.ValueTextEquals("event_id"u8) ? 3 : reader.ValueTextEquals("sender"u8) ? 4 : 0;
            reader.Read();
            if (field == 0 || reader.TokenType != JsonTokenType.String)
            {
                reader.Skip();
                continue;
            }
            var value = reader.GetString();
            switch (field)
            {
                case 1: type = value; break;
                case 2: stateKey = value; break;
                case 3: eventId = value; break;
                default: sender = value; break;
            }
        }
        return new TopLevel(type, stateKey, eventId, sender, membership, content);
    }

    // Versions 1 and 2 (and a create event that names no version: "1") reference events by their hashes.
    private static bool NeedsWholeMemberEvents(JsonObject? create)
    {
        var version = create?["content"] is JsonObject c && GetString(c, "room_version") is { } v ? v : "1";
        return create is not null && (!RoomVersions.IsKnown(version) || RoomVersions.Number(version) < 3);
    }

    /// <summary>A member event's summary, <c>{"event_id","sender","content"}</c> (event id first), its content copied
    /// as stored.</summary>
    private static byte[] Summary(string? eventId, string? sender, ReadOnlySpan<byte> content)
    {
        var buffer = new ArrayBufferWriter<byte>(content.Length + 128);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("event_id"u8, eventId);
            writer.WriteString("sender"u8, sender);
            writer.WritePropertyName("content"u8);
            writer.WriteRawValue(content, skipInputValidation: true);
            writer.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>The event id of a summary: its first property.</summary>
    private static string? SummaryEventId(byte[] summary)
    {
        var reader = new Utf8JsonReader(summary);
        reader.Read();
        reader.Read();
        reader.Read();
        return reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
    }

    internal static string? GetString(JsonObject obj, string key) =>
        obj[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
}

using System.Text.Json.Nodes;
using Homeserver.Errors;
using Homeserver.Rooms;

namespace Homeserver.Sync;

/// <summary>The parts of a Matrix filter (spec "Filtering") that shape a /sync or /messages response.</summary>
public sealed class SyncFilter
{
    public const int DefaultTimelineLimit = 10;
    public const int MaxTimelineLimit = 1000;

    public int TimelineLimit { get; private init; } = DefaultTimelineLimit;
    public EventFilter Timeline { get; private init; } = new();
    public EventFilter State { get; private init; } = new();
    public EventFilter AccountData { get; private init; } = new();
    public EventFilter Presence { get; private init; } = new();
    public HashSet<string>? Rooms { get; private init; }
    public HashSet<string> NotRooms { get; private init; } = [];
    public bool IncludeLeave { get; private init; }
    public bool LazyLoadMembers { get; private init; }
    /// <summary>With lazy loading: send the timeline senders' members even when the device was sent them before.</summary>
    public bool IncludeRedundantMembers { get; private init; }
    /// <summary><c>room.timeline.unread_thread_notifications</c>: counts split into the main timeline's and each
    /// thread's (spec "Receiving notifications", threaded).</summary>
    public bool UnreadThreadNotifications { get; private init; }
    /// <summary><c>event_format: federation</c>: room events as the server stores and signs them, not the client shape.</summary>
    public bool FederationFormat { get; private init; }

    public static readonly SyncFilter Default = new();

    public bool IncludesRoom(string roomId) => !NotRooms.Contains(roomId) && (Rooms is null || Rooms.Contains(roomId));

    /// <summary>Parses filter JSON; malformed filters are 400 <c>M_BAD_JSON</c>/<c>M_INVALID_PARAM</c>, never 500.</summary>
    public static SyncFilter Parse(JsonObject filter)
    {
        var room = Section(filter, "room", "room");
        var timeline = Section(room, "timeline", "room.timeline");
        Section(room, "ephemeral", "room.ephemeral");
        Section(room, "account_data", "room.account_data");
        var limit = DefaultTimelineLimit;
        if (timeline?["limit"] is JsonValue lv)
        {
            if (!lv.TryGetValue<int>(out limit) || limit < 0) throw MatrixException.BadJson("'room.timeline.limit' must be a non-negative integer");
            limit = Math.Min(limit, MaxTimelineLimit);
        }
        var state = Section(room, "state", "room.state");
        return new SyncFilter
        {
            TimelineLimit = limit,
            Timeline = EventFilter.Parse(timeline),
            State = EventFilter.Parse(state),
            AccountData = EventFilter.Parse(Section(filter, "account_data", "account_data")),
            Presence = EventFilter.Parse(Section(filter, "presence", "presence")),
            Rooms = StringSet(room?["rooms"], "room.rooms"),
            NotRooms = StringSet(room?["not_rooms"], "room.not_rooms") ?? [],
            IncludeLeave = room?["include_leave"] is JsonValue il && il.TryGetValue<bool>(out var b) && b,
            LazyLoadMembers = StrictBool(state, "lazy_load_members"),
            IncludeRedundantMembers = StrictBool(state, "include_redundant_members"),
            UnreadThreadNotifications = StrictBool(timeline, "unread_thread_notifications"),
            FederationFormat = filter["event_format"] switch
            {
                null => false,
                JsonValue f when f.TryGetValue<string>(out var format) && format is "client" or "federation" => format == "federation",
                _ => throw MatrixException.BadJson("'event_format' must be \"client\" or \"federation\""),
            },
        };
    }

    /// <summary>A part of the filter that must be an object when present (a string there is a client bug: 400).</summary>
    private static JsonObject? Section(JsonObject? parent, string name, string path) =>
        parent?[name] switch
        {
            null => null,
            JsonObject o => o,
            _ => throw MatrixException.BadJson($"'{path}' must be an object"),
        };

    // The spec's booleans are JSON booleans: "true" or 1 is a client bug worth a 400, not a silent false.
    private static bool StrictBool(JsonObject? parent, string name)
    {
        if (parent?[name] is not { } node) return false;
        return node is JsonValue v && v.TryGetValue<bool>(out var value)
            ? value
            : throw MatrixException.BadJson($"'{name}' must be a boolean");
    }

    internal static HashSet<string>? StringSet(JsonNode? node, string name)
    {
        if (node is null) return null;
        if (node is not JsonArray array) throw MatrixException.BadJson($"'{name}' must be an array of strings");
        var set = new HashSet<string>(StringComparer.Ordinal);
        foreach (var item in array)
        {
            if (item is not JsonValue v || !v.TryGetValue<string>(out var s)) throw MatrixException.BadJson($"'{name}' must be an array of strings");
            set.Add(s);
        }
        return set;
    }
}

/// <summary>types / not_types (with <c>*</c> wildcards), senders / not_senders, contains_url.</summary>
public sealed class EventFilter
{
    public string[]? Types { get; private init; }
    public string[] NotTypes { get; private init; } = [];
    public HashSet<string>? Senders { get; private init; }
    public HashSet<string> NotSenders { get; private init; } = [];
    public int? Limit { get; private init; }

    public static EventFilter Parse(JsonObject? node)
    {
        if (node is null) return new EventFilter();
        int? limit = null;
        if (node["limit"] is JsonValue lv)
        {
            if (!lv.TryGetValue<int>(out var l) || l < 0) throw MatrixException.BadJson("'limit' must be a non-negative integer");
            limit = l;
        }
        // Rooms and senders are ids: anything else can match nothing and is a client bug.
        foreach (var name in new[] { "rooms", "not_rooms" })
            if (SyncFilter.StringSet(node[name], name) is { } rooms && rooms.FirstOrDefault(r => !Matrix.Identifiers.IsValidRoomId(r)) is { } badRoom)
                throw MatrixException.InvalidParam($"'{name}' holds '{Quote.Short(badRoom)}', which is no room id");
        foreach (var name in new[] { "senders", "not_senders" })
            if (SyncFilter.StringSet(node[name], name) is { } users && users.FirstOrDefault(u => !Matrix.Identifiers.IsValidUserId(u)) is { } badUser)
                throw MatrixException.InvalidParam($"'{name}' holds '{Quote.Short(badUser)}', which is no user id");
        return new EventFilter
        {
            Types = SyncFilter.StringSet(node["types"], "types")?.ToArray(),
            NotTypes = SyncFilter.StringSet(node["not_types"], "not_types")?.ToArray() ?? [],
            Senders = SyncFilter.StringSet(node["senders"], "senders"),
            NotSenders = SyncFilter.StringSet(node["not_senders"], "not_senders") ?? [],
            Limit = limit,
        };
    }

    // Loops rather than LINQ: a full-state sync asks this of each of its 90,000 state events.
    public bool Matches(string type, string sender)
    {
        if (NotSenders.Count > 0 && NotSenders.Contains(sender)) return false;
        if (Senders is not null && !Senders.Contains(sender)) return false;
        foreach (var pattern in NotTypes)
            if (Glob(pattern, type)) return false;
        if (Types is null) return true;
        foreach (var pattern in Types)
            if (Glob(pattern, type)) return true;
        return false;
    }

    public bool Matches(StoredEvent ev) => Matches(ev.Type, ev.Sender);

    /// <summary>Whether the filter leaves any event out (so a page of events may hold fewer matches than its size).</summary>
    public bool Restricts => Types is not null || NotTypes.Length > 0 || Senders is not null || NotSenders.Count > 0;

    private static bool Glob(string pattern, string value)
    {
        if (!pattern.Contains('*')) return pattern == value;
        var regex = "^" + System.Text.RegularExpressions.Regex.Escape(pattern).Replace("\\*", ".*") + "$";
        return System.Text.RegularExpressions.Regex.IsMatch(value, regex);
    }
}

using System.Collections.Immutable;
using System.Text.Json.Nodes;

namespace Homeserver.Matrix;

/// <summary>
/// A room's state at one point: the latest event for each <c>(type, state_key)</c>. The events themselves are
/// treated as immutable, and the map is an immutable one, so a clone costs nothing and a change to it costs O(log n):
/// a join into a room of 10,000 members does not copy the other members' entries.
/// </summary>
public sealed class RoomState
{
    private ImmutableDictionary<(string Type, string StateKey), JsonObject> _events;
    private PowerLevels? _powerLevels;

    public RoomState() => _events = ImmutableDictionary<(string, string), JsonObject>.Empty;

    public RoomState(IEnumerable<JsonObject> events) : this()
    {
        foreach (var ev in events) Set(ev);
    }

    private RoomState(ImmutableDictionary<(string, string), JsonObject> events, PowerLevels? powerLevels)
    {
        _events = events;
        _powerLevels = powerLevels;
    }

    public int Count => _events.Count;

    /// <summary>All current state events, in no particular order.</summary>
    public IEnumerable<JsonObject> Events => _events.Values;

    /// <summary>All entries with their keys, in no particular order.</summary>
    public IEnumerable<KeyValuePair<(string Type, string StateKey), JsonObject>> Entries => _events;

    public JsonObject? Get(string type, string stateKey) => _events.GetValueOrDefault((type, stateKey));

    /// <summary>Records <paramref name="ev"/> as the state for its <c>(type, state_key)</c>, replacing any previous one.</summary>
    public void Set(JsonObject ev)
    {
        var type = GetString(ev, "type") ?? throw new ArgumentException("State event has no type", nameof(ev));
        var stateKey = GetString(ev, "state_key") ?? throw new ArgumentException("Event has no state_key", nameof(ev));
        _events = _events.SetItem((type, stateKey), ev);
        if (type is "m.room.power_levels" or "m.room.create") _powerLevels = null;
    }

    public bool Remove(string type, string stateKey)
    {
        if (type is "m.room.power_levels" or "m.room.create") _powerLevels = null;
        var before = _events;
        _events = _events.Remove((type, stateKey));
        return _events != before;
    }

    public RoomState Clone() => new(_events, _powerLevels);

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
        Get("m.room.member", userId)?["content"] is JsonObject c ? GetString(c, "membership") : null;

    /// <summary>The users whose membership is <paramref name="membership"/>.</summary>
    public IEnumerable<string> Members(string membership = "join")
    {
        foreach (var ((type, stateKey), ev) in _events)
            if (type == "m.room.member" && ev["content"] is JsonObject c && GetString(c, "membership") == membership)
                yield return stateKey;
    }

    internal static string? GetString(JsonObject obj, string key) =>
        obj[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
}

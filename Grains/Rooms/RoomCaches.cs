using System.Collections.Immutable;
using System.Text.Json.Nodes;
using Homeserver.Matrix;
using Homeserver.Caches;
using Homeserver.Streams;

namespace Homeserver.Rooms;

/// <summary>
/// The per-silo caches of the rooms area and their invalidation: a handler on the <c>events</c> stream drops what a
/// row changed before this silo's reader moves past it, so a read after waiting for a write's position never sees
/// the state from before it.
/// </summary>
public static class RoomCaches
{
    /// <summary>Room id → <see cref="CurrentRoomState"/>.</summary>
    public const string CurrentState = "rooms.current_state";

    /// <summary>State events <see cref="CurrentState"/> holds by default, summed over its rooms (about 2.5 KB each):
    /// sized by events, because a room of 10,000 members weighs what 2,000 small rooms do.</summary>
    public const int DefaultStateEvents = 100_000;

    /// <summary>The current-state cache of this silo, bounded by state events (<see cref="DefaultStateEvents"/>, or
    /// <c>Homeserver:Caches:Sizes:rooms.current_state</c>).</summary>
    public static SiloCache<CurrentRoomState> CurrentStates(CacheRegistry caches) =>
        caches.Get<CurrentRoomState>(CurrentState, DefaultStateEvents, state => Math.Max(1, state.EventCount));

    /// <summary>Room id → the user ids joined to it, for rooms whose whole state this silo does not hold: what presence
    /// asks of a room (who shares it with the syncing user) without reading its member events.</summary>
    public const string JoinedMembers = "rooms.joined_members";

    /// <summary>Members <see cref="JoinedMembers"/> holds by default, summed over its rooms.</summary>
    public const int DefaultJoinedMembers = 200_000;

    /// <summary>The joined-member sets of this silo, bounded by members (<see cref="DefaultJoinedMembers"/>, or
    /// <c>Homeserver:Caches:Sizes:rooms.joined_members</c>). Moved forward by the reader's membership rows as the state
    /// snapshots are, so a set read after waiting for a position holds every membership change up to it.</summary>
    public static SiloCache<ImmutableSortedSet<string>> JoinedMemberSets(CacheRegistry caches) =>
        caches.Get<ImmutableSortedSet<string>>(JoinedMembers, DefaultJoinedMembers, members => Math.Max(1, members.Count));

    /// <summary>The user ids joined to <paramref name="roomId"/> as this silo knows them without a read: from its
    /// state snapshot, else from its joined-member set, else null.</summary>
    public static IReadOnlySet<string>? CachedJoinedMembers(CacheRegistry caches, string roomId) =>
        CurrentStates(caches).TryGet(roomId, out var state) ? state.JoinedMembers
        : JoinedMemberSets(caches).TryGet(roomId, out var members) ? members
        : null;

    /// <summary>Event id → <see cref="StoredEvent"/> (only events that exist are cached).</summary>
    public const string Events = "rooms.events";

    /// <summary>User id → that user's current memberships (<see cref="UserRoomMembership"/> list).</summary>
    public const string UserMemberships = "rooms.user_memberships";

    /// <summary>Room id → <see cref="RoomInfo"/> (only rooms that exist are cached).</summary>
    public const string Rooms = "rooms.info";
}

public sealed class RoomCacheHandler(CacheRegistry caches, RecentRoomEvents recent, RoomRelations relations) : IStreamRowHandler
{
    public string Stream => StreamNames.Events;

    public void Handle(StreamEntry entry)
    {
        switch (entry.Kind)
        {
            case RoomStreamRows.EventKind:
            {
                var row = RoomStreamRows.Parse<RoomEventRow>(entry.Payload);
                // One record for the room's current state and its recent events: the same event is not held twice.
                var stored = RecentRoomEvents.ToStoredEvent(entry, row);
                // A new state event makes the room's next snapshot from the cached one; a redaction of state (rare)
                // drops it, to be loaded again.
                if (row.RedactsState)
                {
                    caches.Invalidate(RoomCaches.CurrentState, row.RoomId);
                    caches.Invalidate(RoomCaches.JoinedMembers, row.RoomId);
                }
                else if (row.StateKey is not null)
                    RoomCaches.CurrentStates(caches).Update(row.RoomId, state => state.With(stored));
                if (row.Membership is not null && row.StateKey is not null)
                {
                    caches.Invalidate(RoomCaches.UserMemberships, row.StateKey);
                    var member = row.StateKey;
                    if (!row.RedactsState)
                        RoomCaches.JoinedMemberSets(caches).Update(row.RoomId,
                            members => row.Membership == "join" ? members.Add(member) : members.Remove(member));
                }
                if (row.Redacts is not null) caches.Invalidate(RoomCaches.Events, row.Redacts);
                // The parent's bundled aggregations change with a new child, and with a child's redaction.
                if (row.Relation is { } relation) caches.Invalidate(RoomRelations.Cache, relation.ParentId);
                if (row.RedactsRelationTo is not null) caches.Invalidate(RoomRelations.Cache, row.RedactsRelationTo);
                relations.RecordNew(row.EventId, row.StateKey is not null);
                recent.Applied(entry, row, stored);
                break;
            }
            case RoomStreamRows.ForgetKind:
            {
                var row = RoomStreamRows.Parse<ForgetRow>(entry.Payload);
                caches.Invalidate(RoomCaches.UserMemberships, row.UserId);
                break;
            }
            case RoomStreamRows.PurgeKind:
            {
                // The room's events are cached by event id; a purge is rare enough to drop them all rather than list them.
                var row = RoomStreamRows.Parse<RoomPurgeRow>(entry.Payload);
                caches.Invalidate(RoomCaches.CurrentState, row.RoomId);
                caches.Invalidate(RoomCaches.JoinedMembers, row.RoomId);
                caches.Invalidate(RoomCaches.Rooms, row.RoomId);
                caches.InvalidateAll(RoomCaches.Events);
                foreach (var user in row.Users) caches.Invalidate(RoomCaches.UserMemberships, user);
                break;
            }
        }
    }
}

/// <summary>
/// A room's current state: each state event by (type, state key). Immutable and shared: every reader on the silo reads
/// the one snapshot the cache holds, and a new state event makes the next snapshot (<see cref="With"/>) without
/// touching the previous one, so a join into a room of 10,000 members neither reloads nor copies the other 9,999. The
/// members by membership are kept the same way, because every /sync a row wakes reads them (counts, heroes, presence).
/// </summary>
/// <remarks>
/// The events are held in two parts: the state as loaded, in a plain dictionary nothing changes once it is built (and
/// every later snapshot shares), and the keys set since, in an immutable dictionary whose new versions share their
/// structure. When the keys set since outgrow a quarter of the loaded ones the next snapshot merges them into a new
/// plain dictionary, so a change costs O(log n) plus that copy's share, a constant. Loading into an immutable
/// dictionary instead (a tree node per event) was a twentieth of the first full-state sync after a restart.
/// </remarks>
public sealed class CurrentRoomState
{
    private static readonly ImmutableSortedSet<string> NoUsers = ImmutableSortedSet.Create<string>(StringComparer.Ordinal);
    private static readonly ImmutableDictionary<(string, string), StoredEvent> NoChanges = ImmutableDictionary<(string, string), StoredEvent>.Empty;

    /// <summary>Keys set since loading that are kept apart from the loaded ones at least, however small the room.</summary>
    private const int ChangesKeptApart = 64;

    private readonly Dictionary<(string Type, string StateKey), StoredEvent> _loaded;
    private readonly ImmutableDictionary<(string Type, string StateKey), StoredEvent> _changed;
    private readonly int _count;
    private readonly ImmutableSortedSet<string> _joined;
    private readonly ImmutableSortedSet<string> _invited;

    public CurrentRoomState(IEnumerable<StoredEvent> events) : this(events.Select(e => (e, (string?)null)))
    {
    }

    /// <summary>From state events each read with its membership where the reader had it beside the event (the
    /// <c>room_current_state</c> row's, migration 0029), so that a member event's JSON is parsed only where it did not:
    /// reading the memberships of 90,000 member events out of their JSON was a sixth of a process-cold full-state
    /// sync's CPU. The memberships are kept by state key, so that of two events for one key the last counts, as it
    /// does in the state.</summary>
    public CurrentRoomState(IEnumerable<(StoredEvent Event, string? Membership)> events)
    {
        var byKey = new Dictionary<(string, string), StoredEvent>();
        var memberships = new Dictionary<string, string?>(StringComparer.Ordinal);
        var list = new List<StoredEvent>();
        foreach (var (e, membership) in events)
        {
            if (e.StateKey is null) continue;
            byKey[(e.Type, e.StateKey)] = e;
            list.Add(e);
            if (e.Type == "m.room.member") memberships[e.StateKey] = membership;
        }
        // The events as given are the list, unless one key came twice.
        if (list.Count == byKey.Count) _events = list;
        var (joined, invited) = (new List<string>(), new List<string>());
        foreach (var (member, known) in memberships)
        {
            var membership = known ?? RoomEventFormat.ContentString(byKey[("m.room.member", member)].Utf8Json, "membership");
            if (membership == "join") joined.Add(member);
            else if (membership == "invite") invited.Add(member);
        }
        (_loaded, _changed, _count) = (byKey, NoChanges, byKey.Count);
        (_joined, _invited) = (NoUsers.Union(joined), NoUsers.Union(invited));
    }

    private CurrentRoomState(Dictionary<(string, string), StoredEvent> loaded, ImmutableDictionary<(string, string), StoredEvent> changed,
        int count, ImmutableSortedSet<string> joined, ImmutableSortedSet<string> invited, CurrentRoomState previous, bool powerLevelsKept)
    {
        (_loaded, _changed, _count, _joined, _invited) = (loaded, changed, count, joined, invited);
        if (powerLevelsKept) _powerLevels = previous._powerLevels;
    }

    public static readonly CurrentRoomState Empty = new(Array.Empty<StoredEvent>());

    /// <summary>The state after <paramref name="e"/>, a state event newer than every one here (the reader applies a
    /// room's rows in order): this snapshot with the event's (type, state key) replaced; this one stays as it was.</summary>
    public CurrentRoomState With(StoredEvent e)
    {
        if (e.StateKey is null) return this;
        var (joined, invited) = (_joined, _invited);
        if (e.Type == "m.room.member")
        {
            var membership = RoomEventFormat.ContentString(e.Utf8Json, "membership");
            joined = membership == "join" ? joined.Add(e.StateKey) : joined.Remove(e.StateKey);
            invited = membership == "invite" ? invited.Add(e.StateKey) : invited.Remove(e.StateKey);
        }
        var key = (e.Type, e.StateKey);
        var count = _changed.ContainsKey(key) || _loaded.ContainsKey(key) ? _count : _count + 1;
        var (loaded, changed) = (_loaded, _changed.SetItem(key, e));
        if (changed.Count > Math.Max(ChangesKeptApart, loaded.Count / 4))
        {
            loaded = new Dictionary<(string, string), StoredEvent>(loaded);
            foreach (var (k, v) in changed) loaded[k] = v;
            changed = NoChanges;
        }
        var powerLevelsKept = e.Type is not ("m.room.power_levels" or "m.room.create");
        return new CurrentRoomState(loaded, changed, count, joined, invited, this, powerLevelsKept);
    }

    // Materialised on first use: most readers look entries up by key and never need the list.
    private IReadOnlyList<StoredEvent>? _events;

    /// <summary>Every current state event, in no particular order.</summary>
    public IReadOnlyList<StoredEvent> Events => _events ??= Materialise();

    private List<StoredEvent> Materialise()
    {
        var list = new List<StoredEvent>(_count);
        foreach (var (key, e) in _loaded)
            if (!_changed.ContainsKey(key)) list.Add(e);
        list.AddRange(_changed.Values);
        return list;
    }

    /// <summary>How many state events the room has, without building <see cref="Events"/> (the cache weighs every new
    /// snapshot by it).</summary>
    public int EventCount => _count;

    public bool Exists => _count > 0;

    public StoredEvent? Get(string type, string stateKey) =>
        _changed.TryGetValue((type, stateKey), out var changed) ? changed : _loaded.GetValueOrDefault((type, stateKey));

    /// <summary>The membership of a user ("join", "invite", "leave", "ban", "knock") or null.</summary>
    public string? Membership(string userId) =>
        Get("m.room.member", userId) is { } e ? RoomEventFormat.ContentString(e.Utf8Json, "membership") : null;

    public IEnumerable<StoredEvent> Members => Events.Where(e => e.Type == "m.room.member");

    /// <summary>The room's current <c>history_visibility</c>; "shared" without one (the spec's default).</summary>
    public string HistoryVisibility =>
        Get("m.room.history_visibility", "") is { } hv ? RoomEventFormat.ContentString(hv.Utf8Json, "history_visibility") ?? "shared" : "shared";

    public bool IsWorldReadable => HistoryVisibility == "world_readable";

    /// <summary>The display name the user has in the room (their member event's), or null.</summary>
    public string? DisplayName(string userId) =>
        Get("m.room.member", userId) is { } member ? RoomEventFormat.ContentString(member.Utf8Json, "displayname") : null;

    private PowerLevels? _powerLevels;

    /// <summary>The user ids whose membership is join, in ordinal order.</summary>
    public IReadOnlySet<string> JoinedMembers => _joined;

    /// <summary>The user ids whose membership is invite, in ordinal order.</summary>
    public IReadOnlySet<string> InvitedMembers => _invited;

    public int JoinedMemberCount => _joined.Count;

    /// <summary>The room's power levels (spec defaults without a power levels event), as the auth rules read them.</summary>
    public PowerLevels PowerLevels => _powerLevels ??= new RoomState(
        new[] { Get("m.room.power_levels", ""), Get("m.room.create", "") }.OfType<StoredEvent>()
            .Select(e => JsonNode.Parse(e.Utf8Json)!.AsObject())).PowerLevels;
}

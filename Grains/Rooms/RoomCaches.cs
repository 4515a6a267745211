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
        caches.Get<CurrentRoomState>(CurrentState, DefaultStateEvents, state => Math.Max(1, state.Events.Count));

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
                if (row.StateKey is not null || row.RedactsState) caches.Invalidate(RoomCaches.CurrentState, row.RoomId);
                if (row.Membership is not null && row.StateKey is not null) caches.Invalidate(RoomCaches.UserMemberships, row.StateKey);
                if (row.Redacts is not null) caches.Invalidate(RoomCaches.Events, row.Redacts);
                // The parent's bundled aggregations change with a new child, and with a child's redaction.
                if (row.Relation is { } relation) caches.Invalidate(RoomRelations.Cache, relation.ParentId);
                if (row.RedactsRelationTo is not null) caches.Invalidate(RoomRelations.Cache, row.RedactsRelationTo);
                relations.RecordNew(row.EventId);
                recent.Applied(entry, row);
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
                caches.Invalidate(RoomCaches.Rooms, row.RoomId);
                caches.InvalidateAll(RoomCaches.Events);
                foreach (var user in row.Users) caches.Invalidate(RoomCaches.UserMemberships, user);
                break;
            }
        }
    }
}

/// <summary>A room's current state as loaded from the database: each state event by (type, state key).</summary>
public sealed class CurrentRoomState(IReadOnlyList<StoredEvent> events)
{
    private readonly Dictionary<(string, string), StoredEvent> _byKey =
        events.Where(e => e.StateKey is not null).ToDictionary(e => (e.Type, e.StateKey!));

    public static readonly CurrentRoomState Empty = new([]);

    public IReadOnlyList<StoredEvent> Events { get; } = events;

    public bool Exists => Events.Count > 0;

    public StoredEvent? Get(string type, string stateKey) => _byKey.GetValueOrDefault((type, stateKey));

    /// <summary>The membership of a user ("join", "invite", "leave", "ban", "knock") or null.</summary>
    public string? Membership(string userId) =>
        Get("m.room.member", userId) is { } e ? RoomEventFormat.ContentString(e.Json, "membership") : null;

    public IEnumerable<StoredEvent> Members => Events.Where(e => e.Type == "m.room.member");

    /// <summary>The room's current <c>history_visibility</c>; "shared" without one (the spec's default).</summary>
    public string HistoryVisibility =>
        Get("m.room.history_visibility", "") is { } hv ? RoomEventFormat.ContentString(hv.Json, "history_visibility") ?? "shared" : "shared";

    public bool IsWorldReadable => HistoryVisibility == "world_readable";

    /// <summary>The display name the user has in the room (their member event's), or null.</summary>
    public string? DisplayName(string userId) =>
        Get("m.room.member", userId) is { } member ? RoomEventFormat.ContentString(member.Json, "displayname") : null;

    // Computed once per cached state: presence and push rule evaluation read them for every member a row wakes.
    private IReadOnlyList<string>? _joinedMembers, _invitedMembers;
    private PowerLevels? _powerLevels;

    /// <summary>The user ids whose membership is join.</summary>
    public IReadOnlyList<string> JoinedMembers => _joinedMembers ??=
        Members.Where(m => RoomEventFormat.ContentString(m.Json, "membership") == "join").Select(m => m.StateKey!).ToList();

    /// <summary>The user ids whose membership is invite (a sync's room summary counts them for every room).</summary>
    public IReadOnlyList<string> InvitedMembers => _invitedMembers ??=
        Members.Where(m => RoomEventFormat.ContentString(m.Json, "membership") == "invite").Select(m => m.StateKey!).ToList();

    public int JoinedMemberCount => JoinedMembers.Count;

    /// <summary>The room's power levels (spec defaults without a power levels event), as the auth rules read them.</summary>
    public PowerLevels PowerLevels => _powerLevels ??= new RoomState(
        Events.Where(e => e.Type is "m.room.power_levels" or "m.room.create" && e.StateKey == "")
              .Select(e => JsonNode.Parse(e.Json)!.AsObject())).PowerLevels;
}

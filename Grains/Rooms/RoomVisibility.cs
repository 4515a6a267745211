using Homeserver.Errors;

namespace Homeserver.Rooms;

/// <summary>
/// Who may read what of a room (spec "History visibility" and the membership checks of the room read endpoints).
/// Reads go through <see cref="RoomEventStore"/>, so they are as fresh as this silo's reader.
/// </summary>
public sealed class RoomVisibility(RoomEventStore store)
{
    /// <summary>
    /// How far the user may read the room's state and members: <c>null</c> for "up to now" (joined, or the room is
    /// world readable), or the topological position of their leave or ban. 403 otherwise, 404 if the room is unknown.
    /// </summary>
    public async Task<long?> RequireReadableAsync(string roomId, string userId)
    {
        var state = await store.GetCurrentStateAsync(roomId);
        if (!state.Exists) throw MatrixException.NotFound("Unknown room");
        var membership = state.Get("m.room.member", userId);
        var value = state.Membership(userId);
        if (value == "join") return null;
        if (state.IsWorldReadable) return null;
        if (value is "leave" or "ban" && membership is not null) return membership.Topological;
        throw MatrixException.Forbidden($"User {userId} not in room {roomId}");
    }

    /// <summary>
    /// The events of a room the user reads as a member or a peeker (/sync, /events) that they may see. Everything after
    /// the latest change of visibility is open when that change opened the room (shared or world readable); what came
    /// before it, and the change itself, is decided event by event (<see cref="CanSeeAsync"/>). State the room still has
    /// is shown even where history was hidden (as Synapse does): a member who rejoins must see how the room came to be
    /// as it is, e.g. who joined while they were away.
    /// </summary>
    public async Task<IReadOnlyList<StoredEvent>> VisibleToMemberAsync(string userId, string roomId, IReadOnlyList<StoredEvent> events) =>
        events.Count == 0 ? events : await VisibleToMemberAsync(userId, roomId, events, await store.GetCurrentStateAsync(roomId));

    /// <summary>As <see cref="VisibleToMemberAsync(string, string, IReadOnlyList{StoredEvent})"/> with the room's
    /// current state at hand: it needs the history visibility and the current entries of the events' state keys.</summary>
    public async Task<IReadOnlyList<StoredEvent>> VisibleToMemberAsync(string userId, string roomId, IReadOnlyList<StoredEvent> events,
        CurrentRoomState current)
    {
        if (events.Count == 0) return events;
        var openSince = current.HistoryVisibility is "shared" or "world_readable"
            ? current.Get("m.room.history_visibility", "")?.Topological ?? -1
            : long.MaxValue;
        if (events.All(e => e.Topological > openSince)) return events;
        var visible = new List<StoredEvent>(events.Count);
        foreach (var e in events)
            if (e.Topological > openSince || (e.StateKey is not null && current.Get(e.Type, e.StateKey)?.EventId == e.EventId)
                || await CanSeeAsync(userId, e))
                visible.Add(e);
        return visible;
    }

    /// <summary>
    /// Whether the user may see <paramref name="ev"/>: a world-readable history, their membership just after the
    /// event was join (or invite for "invited"), or "shared" history and they are joined now.
    /// </summary>
    public async Task<bool> CanSeeAsync(string userId, StoredEvent ev)
    {
        // Users always see their own membership changes (as in Synapse): a member who left sees their leave.
        if (ev.Type == "m.room.member" && ev.StateKey == userId) return true;
        var visibility = await HistoryVisibilityAtAsync(ev.RoomId, ev.Topological);
        // A change of history visibility is seen by whoever could see the room on either side of it (as in Synapse):
        // the more permissive of the old and the new value decides, so the boundary itself is never hidden.
        if (ev.Type == "m.room.history_visibility" && ev.StateKey == "")
        {
            var before = await HistoryVisibilityAtAsync(ev.RoomId, ev.Topological - 1);
            if (Permissiveness(before) < Permissiveness(visibility)) visibility = before;
        }
        if (visibility == "world_readable") return true;
        var membershipAt = await store.GetMembershipAtAsync(ev.RoomId, userId, ev.Topological);
        if (membershipAt == "join") return true;
        if (visibility == "invited" && membershipAt == "invite") return true;
        if (visibility == "shared") return await store.GetMembershipAsync(ev.RoomId, userId) == "join";
        return false;
    }

    // Most permissive first: world_readable, shared, invited, joined; an unknown value counts as shared.
    private static int Permissiveness(string visibility) => visibility switch
    {
        "world_readable" => 0,
        "invited" => 2,
        "joined" => 3,
        _ => 1,
    };

    private async Task<string> HistoryVisibilityAtAsync(string roomId, long topological)
    {
        var at = await store.GetStateEventAtAsync(roomId, "m.room.history_visibility", "", topological);
        return at is null ? "shared" : RoomEventFormat.ContentString(at.Utf8Json, "history_visibility") ?? "shared";
    }
}

using System.Collections.Immutable;
using Homeserver.Caches;
using Homeserver.Rooms;
using Npgsql;

namespace Homeserver.Sync;

/// <summary>
/// What a sync from scratch shows of a room's current state. <see cref="Known"/> holds every state event except member
/// events, and of those the ones asked for (<see cref="RoomSyncStates.GetAsync"/>), or all of them when the room's whole
/// state was at hand: never read its member lists (<see cref="CurrentRoomState.JoinedMembers"/>) or its member count,
/// which are <see cref="JoinedMembers"/> and <see cref="InvitedMembers"/> here, with the first members by user id for
/// the summary's heroes.
/// </summary>
public sealed record RoomSyncState(CurrentRoomState Known, int JoinedMembers, int InvitedMembers, IReadOnlyList<string> FirstMembers)
{
    /// <summary>How many members of each kind <see cref="FirstMembers"/> holds at most: five heroes without the user.</summary>
    public const int FirstMembersKept = 6;

    /// <summary>From a room's whole current state.</summary>
    public static RoomSyncState Of(CurrentRoomState state) =>
        new(state, state.JoinedMembers.Count, state.InvitedMembers.Count,
            // Both sets are in ordinal order, so the first five of their union (without the user) are among their first six.
            state.JoinedMembers.Take(FirstMembersKept).Concat(state.InvitedMembers.Take(FirstMembersKept)).ToList());
}

/// <summary>
/// Reads the current states a sync from scratch needs, for all of a user's rooms at once: the whole state of the rooms
/// this silo has in its cache; for the others, when the client lazy-loads members, every state event but the member
/// events and the member events of the users each room's response needs in one query, the member counts in another
/// beside it (plus one for the heroes of rooms without a name). A cold sync of an account in 300 rooms of 300 members then reads about
/// 2,000 state events instead of 90,000, and parses none of the others' member events.
/// </summary>
public sealed class RoomSyncStates(NpgsqlDataSource db, RoomEventStore store, CacheRegistry caches)
{
    private const int Slices = 4;
    private const int MinRoomsPerSlice = 25;

    /// <param name="rooms">Each room with the users whose member events its response needs.</param>
    /// <param name="allMembers">The response sends every member (no lazy loading): read the whole states, and keep them
    /// in the cache.</param>
    public async Task<Dictionary<string, RoomSyncState>> GetAsync(IReadOnlyList<(string RoomId, IReadOnlyCollection<string> Members)> rooms,
        bool allMembers)
    {
        var cache = RoomCaches.CurrentStates(caches);
        var result = new Dictionary<string, RoomSyncState>(rooms.Count, StringComparer.Ordinal);
        var missing = new List<(string RoomId, IReadOnlyCollection<string> Members)>();
        foreach (var room in rooms)
            if (cache.TryGet(room.RoomId, out var state)) result[room.RoomId] = RoomSyncState.Of(state);
            else missing.Add(room);
        if (missing.Count == 0) return result;
        if (allMembers)
        {
            // Read in a few slices side by side: the database reads one while this process parses another.
            var slices = missing.Select(m => m.RoomId).Chunk(Math.Max(MinRoomsPerSlice, (missing.Count + Slices - 1) / Slices));
            foreach (var states in await Task.WhenAll(slices.Select(slice => store.GetCurrentStatesAsync(slice))))
                foreach (var (roomId, state) in states) result[roomId] = RoomSyncState.Of(state);
            return result;
        }

        var ids = missing.Select(m => m.RoomId).ToArray();
        // Side by side: counting reads every membership row of the rooms, the state read a few events each.
        var counting = CountMembersAsync(ids);
        var events = new Dictionary<string, List<StoredEvent>>(ids.Length, StringComparer.Ordinal);
        await using (var cmd = db.CreateCommand(
                         $"""
                          SELECT {RoomEventStore.Prefixed("e")} FROM room_current_state s JOIN events e ON e.event_id = s.event_id
                           WHERE s.room_id = ANY($1) AND s.type <> 'm.room.member'
                          UNION ALL
                          SELECT {RoomEventStore.Prefixed("e")} FROM unnest($2::text[], $3::text[]) AS m(room_id, user_id)
                            JOIN room_current_state s ON s.room_id = m.room_id AND s.type = 'm.room.member' AND s.state_key = m.user_id
                            JOIN events e ON e.event_id = s.event_id
                          """))
        {
            cmd.Parameters.AddWithValue(ids);
            cmd.Parameters.AddWithValue(missing.SelectMany(m => m.Members.Select(_ => m.RoomId)).ToArray());
            cmd.Parameters.AddWithValue(missing.SelectMany(m => m.Members).ToArray());
            foreach (var e in await RoomEventStore.ReadEventsAsync(cmd))
            {
                if (!events.TryGetValue(e.RoomId, out var list)) events[e.RoomId] = list = [];
                list.Add(e);
            }
        }
        var counts = await counting;

        var known = ids.ToDictionary(id => id, id => events.TryGetValue(id, out var list) ? new CurrentRoomState(list) : CurrentRoomState.Empty,
            StringComparer.Ordinal);
        var unnamed = ids.Where(id => !IsNamed(known[id])).ToArray();
        var first = unnamed.Length == 0 ? [] : await FirstMembersAsync(unnamed);
        foreach (var id in ids)
        {
            var (joined, invited) = counts.GetValueOrDefault(id);
            result[id] = new RoomSyncState(known[id], joined, invited, first.GetValueOrDefault(id) ?? []);
        }
        return result;
    }

    /// <summary>The user ids joined to each room: from this silo's state snapshots and joined-member sets, one query of
    /// <c>room_memberships</c> for the others, whose sets are kept (<see cref="RoomCaches.JoinedMembers"/>). Presence
    /// asks it on every sync and registers its long-poll's wake-ups from the same sets; reading members this way costs
    /// a row per member, where a room's whole state costs its member events parsed.</summary>
    public async Task<List<IReadOnlySet<string>>> GetJoinedMemberSetsAsync(IReadOnlyCollection<string> roomIds)
    {
        var result = new List<IReadOnlySet<string>>(roomIds.Count);
        var missing = new List<string>();
        foreach (var roomId in roomIds)
            if (RoomCaches.CachedJoinedMembers(caches, roomId) is { } members) result.Add(members);
            else missing.Add(roomId);
        if (missing.Count == 0) return result;

        var sets = RoomCaches.JoinedMemberSets(caches);
        var generation = sets.Generation;
        var read = missing.ToDictionary(id => id, _ => new List<string>(), StringComparer.Ordinal);
        // One string per user however many of the rooms they share: 300 users in 300 rooms are 300 strings, not 90,000.
        var users = new Dictionary<string, string>(StringComparer.Ordinal);
        await using (var cmd = db.CreateCommand("SELECT room_id, user_id FROM room_memberships WHERE room_id = ANY($1) AND membership = 'join'"))
        {
            cmd.Parameters.AddWithValue(missing.ToArray());
            await using var reader = await cmd.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                var userId = reader.GetString(1);
                if (!users.TryGetValue(userId, out var shared)) users[userId] = shared = userId;
                read[reader.GetString(0)].Add(shared);
            }
        }
        foreach (var (roomId, members) in read)
        {
            var set = ImmutableSortedSet.CreateRange(StringComparer.Ordinal, members);
            // A room without members (unknown to the database) is not kept: nothing moves its set forward once it exists.
            if (set.Count > 0) sets.Store(roomId, set, generation);
            result.Add(set);
        }
        return result;
    }

    /// <summary>Joined and invited members per room, from <c>room_memberships</c>.</summary>
    private async Task<Dictionary<string, (int Joined, int Invited)>> CountMembersAsync(string[] roomIds)
    {
        await using var cmd = db.CreateCommand(
            """
            SELECT room_id, count(*) FILTER (WHERE membership = 'join')::int, count(*) FILTER (WHERE membership = 'invite')::int
              FROM room_memberships WHERE room_id = ANY($1) AND membership IN ('join', 'invite') GROUP BY room_id
            """);
        cmd.Parameters.AddWithValue(roomIds);
        var counts = new Dictionary<string, (int, int)>(roomIds.Length, StringComparer.Ordinal);
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync()) counts[reader.GetString(0)] = (reader.GetInt32(1), reader.GetInt32(2));
        return counts;
    }

    /// <summary>Whether the room has a name or canonical alias, so that its summary names no heroes (spec
    /// "Calculating the display name for a room"; as in Synapse).</summary>
    public static bool IsNamed(CurrentRoomState state) =>
        (state.Get("m.room.name", "") is { } name && RoomEventFormat.ContentString(name.Utf8Json, "name") is { Length: > 0 })
        || (state.Get("m.room.canonical_alias", "") is { } alias && RoomEventFormat.ContentString(alias.Utf8Json, "alias") is { Length: > 0 });

    /// <summary>The first joined and the first invited members of each room by user id (ordinal, as the member sets of
    /// <see cref="CurrentRoomState"/> order them), <see cref="RoomSyncState.FirstMembersKept"/> of each.</summary>
    private async Task<Dictionary<string, List<string>>> FirstMembersAsync(string[] roomIds)
    {
        await using var cmd = db.CreateCommand(
            """
            SELECT r.room_id, f.user_id FROM unnest($1::text[]) AS r(room_id), unnest(ARRAY['join', 'invite']) AS k(membership)
             CROSS JOIN LATERAL (SELECT user_id FROM room_memberships
                                  WHERE room_memberships.room_id = r.room_id AND room_memberships.membership = k.membership
                                  ORDER BY user_id COLLATE "C" LIMIT $2) f
            """);
        cmd.Parameters.AddWithValue(roomIds);
        cmd.Parameters.AddWithValue(RoomSyncState.FirstMembersKept);
        var result = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            var roomId = reader.GetString(0);
            if (!result.TryGetValue(roomId, out var list)) result[roomId] = list = [];
            list.Add(reader.GetString(1));
        }
        return result;
    }
}

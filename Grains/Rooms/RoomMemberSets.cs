using System.Collections.Immutable;
using Homeserver.Caches;
using Npgsql;

namespace Homeserver.Rooms;

/// <summary>
/// Each room's joined members as a shared, immutable set of user ids (ordinal), for what needs to know who shares a
/// room with whom but not their member events: presence's wake-ups and the users it asks about. Taken from the room's
/// current-state snapshot when this silo holds it, else read from <c>room_memberships</c> (user ids only, one query
/// for all the rooms asked), and moved forward by <see cref="RoomCacheHandler"/> on every membership row this silo's
/// reader applies, as the snapshot is. A lazy-loading sync from scratch does not read the others' member events; before
/// this, the long-poll after it needed the rooms' whole states for its presence wake-ups, and read them.
/// </summary>
public sealed class RoomMemberSets(NpgsqlDataSource db, CacheRegistry caches)
{
    /// <summary>Room id → the joined members (<see cref="ImmutableSortedSet{T}"/>, ordinal).</summary>
    public const string Cache = "rooms.joined_members";

    /// <summary>Members <see cref="Cache"/> holds by default, summed over its rooms (a few dozen bytes each, the ids
    /// shared with the rows they came from).</summary>
    public const int DefaultMembers = 1_000_000;

    private static readonly ImmutableSortedSet<string> NoMembers = ImmutableSortedSet.Create<string>(StringComparer.Ordinal);

    /// <summary>This silo's member sets, bounded by members (<see cref="DefaultMembers"/>, or
    /// <c>Homeserver:Caches:Sizes:rooms.joined_members</c>).</summary>
    public static SiloCache<ImmutableSortedSet<string>> Sets(CacheRegistry caches) =>
        caches.Get<ImmutableSortedSet<string>>(Cache, DefaultMembers, set => Math.Max(1, set.Count));

    /// <summary>A membership row applied by this silo's reader: the room's cached set, if any, follows it.</summary>
    public static void Apply(CacheRegistry caches, string roomId, string userId, string membership) =>
        Sets(caches).Update(roomId, set => membership == "join" ? set.Add(userId) : set.Remove(userId));

    /// <summary>The joined members of each room (empty for an unknown room). Every caller on this silo gets the one set
    /// the cache holds for a room, so that the long-polls of a room share it (<see cref="Streams.KeyFamily"/> groups
    /// waiters by set).</summary>
    public async Task<Dictionary<string, IReadOnlySet<string>>> GetAsync(IReadOnlyCollection<string> roomIds)
    {
        var sets = Sets(caches);
        var states = RoomCaches.CurrentStates(caches);
        var result = new Dictionary<string, IReadOnlySet<string>>(roomIds.Count, StringComparer.Ordinal);
        // Taken before anything is read, so that a set read before a membership change the reader applies meanwhile
        // is not stored (the snapshot's set included: it may be replaced as we look).
        var generation = sets.Generation;
        var missing = new List<string>();
        foreach (var roomId in roomIds)
        {
            if (sets.TryGet(roomId, out var set)) result[roomId] = set;
            else if (states.TryGet(roomId, out var state))
            {
                sets.Store(roomId, state.JoinedMemberSet, generation);
                result[roomId] = state.JoinedMemberSet;
            }
            else missing.Add(roomId);
        }
        if (missing.Count == 0) return result;

        // One array a room rather than a row a member; the ids are deduplicated across the rooms of one read (the
        // same users are in many of them).
        await using var cmd = db.CreateCommand(
            "SELECT room_id, array_agg(user_id) FROM room_memberships WHERE room_id = ANY($1) AND membership = 'join' GROUP BY room_id");
        cmd.Parameters.AddWithValue(missing.ToArray());
        var ids = new Dictionary<string, string>(StringComparer.Ordinal);
        var read = new Dictionary<string, ImmutableSortedSet<string>>(missing.Count, StringComparer.Ordinal);
        await using (var reader = await cmd.ExecuteReaderAsync())
            while (await reader.ReadAsync())
            {
                var builder = NoMembers.ToBuilder();
                foreach (var id in reader.GetFieldValue<string[]>(1))
                {
                    if (!ids.TryGetValue(id, out var shared)) ids[id] = shared = id;
                    builder.Add(shared);
                }
                read[reader.GetString(0)] = builder.ToImmutable();
            }
        foreach (var roomId in missing)
        {
            var set = read.GetValueOrDefault(roomId) ?? NoMembers;
            sets.Store(roomId, set, generation);
            // What the cache holds if a concurrent read stored it first: one set a room for every caller.
            result[roomId] = sets.TryGet(roomId, out var stored) ? stored : set;
        }
        return result;
    }
}

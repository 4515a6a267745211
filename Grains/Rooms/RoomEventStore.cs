using System.Collections.Concurrent;
using System.Text;
using Homeserver.Caches;
using Homeserver.Matrix;
using Homeserver.Streams;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Homeserver.Rooms;

public enum Direction
{
    /// <summary>Towards older events (descending).</summary>
    Backwards,
    /// <summary>Towards newer events (ascending).</summary>
    Forwards,
}

/// <summary>
/// The read side of rooms, for endpoints, <c>/sync</c> and <c>/messages</c>. One per silo (a DI singleton). Hot reads
/// (current state, single events, a user's memberships, room info) go through this silo's caches, which
/// <see cref="RoomCacheHandler"/> invalidates before the silo's reader passes the write; range reads go to the
/// database. Callers that must see a write wait for its position first (<see cref="StreamNotifier"/>).
/// </summary>
/// <remarks>
/// Positions: a room's events are on the writer the <c>events</c> shard map gives it (a reshard moves it to another,
/// above everything its old one wrote), so its stream positions are totally ordered whichever writer holds them;
/// <see cref="PositionIn"/> gives a token's position in the room. Topological positions are the room's own sequence (its events' depth, 1 = the
/// create event). Every list comes back in chronological order unless it says otherwise.
/// </remarks>
public sealed class RoomEventStore(NpgsqlDataSource db, CacheRegistry caches, EventShards shards)
{
    internal const string EventColumns =
        "event_id, room_id, type, state_key, sender, origin_server_ts, topological, stream_writer, stream_position, json, device_id, txn_id, redacted_because IS NOT NULL";

    /// <summary>How many columns <see cref="EventColumns"/> names: the first column after them in a query's row.</summary>
    internal static readonly int EventColumnCount = EventColumns.Split(", ").Length;

    /// <summary>The room's position in a token (<see cref="EventShardMap.PositionIn"/>): the bound for its events'
    /// <c>stream_position</c>, whichever writers wrote them.</summary>
    public long PositionIn(StreamToken token, string roomId) => shards.Current.PositionIn(token, roomId);

    /// <summary>The room's creation record, or null when no such room exists here.</summary>
    public async Task<RoomInfo?> GetRoomAsync(string roomId)
    {
        var cache = caches.Get<RoomInfo>(RoomCaches.Rooms);
        if (cache.TryGet(roomId, out var hit)) return hit;
        await using var cmd = db.CreateCommand("SELECT room_version, creator, is_public FROM rooms WHERE room_id = $1");
        cmd.Parameters.AddWithValue(roomId);
        await using var reader = await cmd.ExecuteReaderAsync();
        if (!await reader.ReadAsync()) return null;
        var info = new RoomInfo(roomId, reader.GetString(0), reader.GetString(1), reader.GetBoolean(2));
        // Rooms are never changed once created, so no generation race to guard against.
        cache.Store(roomId, info, cache.Generation);
        return info;
    }

    /// <summary>One event by id (as stored: redacted when redacted), or null.</summary>
    public async Task<StoredEvent?> GetEventAsync(string eventId)
    {
        // No event id holds what PostgreSQL cannot take as text. A NUL sent as a parameter fails at Bind, and a Bind
        // that fails on the run where Npgsql auto-prepares the statement leaves that connection with the statement
        // marked prepared but without its row description: the next lookup on it then fails with "Received
        // unexpected backend message DataRow" (an Npgsql bug, see StorageDataSource). The client boundary refuses NUL;
        // this keeps the hottest lookup safe from any other caller.
        if (!Identifiers.IsValidEventId(eventId)) return null;
        var cache = caches.Get<StoredEvent>(RoomCaches.Events, 50_000);
        if (cache.TryGet(eventId, out var hit)) return hit;
        var generation = cache.Generation;
        await using var cmd = db.CreateCommand($"SELECT {EventColumns} FROM events WHERE event_id = $1");
        cmd.Parameters.AddWithValue(eventId);
        var found = await ReadEventsAsync(cmd);
        if (found.Count == 0) return null;
        cache.Store(eventId, found[0], generation);
        return found[0];
    }

    /// <summary>The room's current state (empty when the room is unknown).</summary>
    public async Task<CurrentRoomState> GetCurrentStateAsync(string roomId)
    {
        var cache = RoomCaches.CurrentStates(caches);
        if (cache.TryGet(roomId, out var state)) return state;
        var result = new Dictionary<string, CurrentRoomState>(1, StringComparer.Ordinal);
        await LoadCurrentStatesAsync(cache, [roomId], result);
        return result[roomId];
    }

    // The loads of rooms' current states this silo has in flight, so that the syncs one wave wakes at once (a thousand
    // long-polls of a room of 10,000 members whose state this silo has not cached yet) share one read of it, where each
    // would read the 10,000 member events itself and hold a connection meanwhile: more than the pool has. A load is
    // shared only while the cache's generation has not moved since it began, since one begun before a change (of any
    // room: the generation is the cache's) may not hold it.
    private readonly ConcurrentDictionary<string, (long Generation, Task<CurrentRoomState> Load)> _stateLoads = new(StringComparer.Ordinal);

    /// <summary>The current state of each room (empty for an unknown one): from this silo's cache where it holds them,
    /// the rest in one query (an initial sync of a user in hundreds of rooms must not pay a round trip a room).</summary>
    public async Task<Dictionary<string, CurrentRoomState>> GetCurrentStatesAsync(IReadOnlyCollection<string> roomIds)
    {
        var cache = RoomCaches.CurrentStates(caches);
        var result = new Dictionary<string, CurrentRoomState>(roomIds.Count, StringComparer.Ordinal);
        var missing = new List<string>();
        foreach (var id in roomIds)
            if (cache.TryGet(id, out var state)) result[id] = state;
            else missing.Add(id);
        if (missing.Count > 0) await LoadCurrentStatesAsync(cache, missing, result);
        return result;
    }

    /// <summary>Adds the current state of each of <paramref name="missing"/> (rooms the cache was just asked for and
    /// did not hold) to <paramref name="result"/>: shared with a load in flight, or read in one query.</summary>
    private async Task LoadCurrentStatesAsync(SiloCache<CurrentRoomState> cache, IReadOnlyList<string> missing, Dictionary<string, CurrentRoomState> result)
    {
        var generation = cache.Generation;
        var shared = new List<(string RoomId, Task<CurrentRoomState> Load)>();
        var loads = new Dictionary<string, TaskCompletionSource<CurrentRoomState>>(StringComparer.Ordinal);
        foreach (var id in missing)
            if (_stateLoads.TryGetValue(id, out var flight) && flight.Generation == generation) shared.Add((id, flight.Load));
            else
            {
                var load = new TaskCompletionSource<CurrentRoomState>(TaskCreationOptions.RunContinuationsAsynchronously);
                loads[id] = load;
                _stateLoads[id] = (generation, load.Task);
            }
        if (loads.Count > 0)
        {
            try
            {
                var byRoom = await ReadCurrentStatesAsync(loads.Keys.ToArray());
                foreach (var (id, load) in loads)
                {
                    var state = byRoom.TryGetValue(id, out var events) ? new CurrentRoomState(events) : CurrentRoomState.Empty;
                    cache.Store(id, state, generation);
                    result[id] = state;
                    load.TrySetResult(state);
                }
            }
            catch (Exception e)
            {
                foreach (var load in loads.Values)
                {
                    load.TrySetException(e);
                    _ = load.Task.Exception; // observed here: a load nobody shared would otherwise report it unobserved
                }
                throw;
            }
            finally
            {
                foreach (var (id, load) in loads) _stateLoads.TryRemove(KeyValuePair.Create(id, (generation, load.Task)));
            }
        }
        foreach (var (id, load) in shared) result[id] = await load;
    }

    /// <summary>The current state events of each room, each member event with the membership its state row holds
    /// (migration 0029; where a member event's row holds none, its JSON decides).</summary>
    private async Task<Dictionary<string, List<(StoredEvent, string?)>>> ReadCurrentStatesAsync(string[] roomIds)
    {
        await using var cmd = db.CreateCommand(
            $"SELECT {Prefixed("e")}, s.membership FROM room_current_state s JOIN events e ON e.event_id = s.event_id WHERE s.room_id = ANY($1)");
        cmd.Parameters.AddWithValue(roomIds);
        var byRoom = new Dictionary<string, List<(StoredEvent, string?)>>(roomIds.Length, StringComparer.Ordinal);
        var strings = new EventStrings.Pool();
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            var e = ReadEvent(reader, strings: strings);
            var membership = reader.IsDBNull(EventColumnCount) ? null : EventStrings.Membership(reader.GetString(EventColumnCount));
            if (!byRoom.TryGetValue(e.RoomId, out var events)) byRoom[e.RoomId] = events = [];
            events.Add((e, membership));
        }
        return byRoom;
    }

    /// <summary>
    /// As <see cref="GetEventsByStreamAsync"/> for several rooms at once: each room's latest <paramref name="limit"/>
    /// events with stream position in (from, to], chronologically, and whether older ones were left out; one query.
    /// </summary>
    /// <param name="withoutMembershipsOtherThan">Leave out the membership events of everyone but this user (unread
    /// counts, when no rule can notify of them).</param>
    public async Task<Dictionary<string, (IReadOnlyList<StoredEvent> Events, bool Limited)>> GetLatestEventsAsync(
        IReadOnlyList<(string RoomId, long FromExclusive, long ToInclusive)> rooms, int limit, string? withoutMembershipsOtherThan = null)
    {
        // Without others' memberships: the events that are not member events (their own index) and the user's own
        // member events, merged below.
        await using var cmd = db.CreateCommand(withoutMembershipsOtherThan is null
            ? $"""
               SELECT {Prefixed("e")} FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS r(room_id, after, upto)
               CROSS JOIN LATERAL (SELECT * FROM events
                                    WHERE events.room_id = r.room_id AND stream_position > r.after AND stream_position <= r.upto
                                    ORDER BY stream_position DESC LIMIT $4) e
               """
            : $"""
               SELECT {Prefixed("e")} FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS r(room_id, after, upto)
               CROSS JOIN LATERAL ((SELECT * FROM events
                                     WHERE events.room_id = r.room_id AND stream_position > r.after AND stream_position <= r.upto
                                       AND type <> 'm.room.member'
                                     ORDER BY stream_position DESC LIMIT $4)
                                   UNION ALL
                                   (SELECT * FROM events
                                     WHERE events.room_id = r.room_id AND type = 'm.room.member' AND state_key = $5
                                       AND stream_position > r.after AND stream_position <= r.upto
                                     ORDER BY stream_position DESC LIMIT $4)) e
               """);
        cmd.Parameters.AddWithValue(rooms.Select(r => r.RoomId).ToArray());
        cmd.Parameters.AddWithValue(rooms.Select(r => r.FromExclusive).ToArray());
        cmd.Parameters.AddWithValue(rooms.Select(r => r.ToInclusive).ToArray());
        cmd.Parameters.AddWithValue(limit + 1);
        if (withoutMembershipsOtherThan is not null) cmd.Parameters.AddWithValue(withoutMembershipsOtherThan);
        var byRoom = (await ReadEventsAsync(cmd)).GroupBy(e => e.RoomId, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.OrderBy(e => e.StreamPosition).ToList(), StringComparer.Ordinal);
        var result = new Dictionary<string, (IReadOnlyList<StoredEvent>, bool)>(rooms.Count, StringComparer.Ordinal);
        foreach (var (roomId, _, _) in rooms)
        {
            var events = byRoom.GetValueOrDefault(roomId) ?? [];
            result[roomId] = events.Count > limit ? (events.GetRange(events.Count - limit, limit), true) : (events, false);
        }
        return result;
    }

    /// <summary>
    /// As <see cref="GetStateAtTopologicalAsync"/> for several rooms at once, derived from each room's current state
    /// (<paramref name="current"/>): an entry of the current state at or below the point was already the state there
    /// (histories are linear and a state key never leaves the state), so only the entries changed after the point
    /// are read back, in one query for all rooms. An initial sync's windows end at the room's newest events, so that
    /// is a handful of keys, where reading the state from the events table reads every member of every room.
    /// </summary>
    public async Task<Dictionary<string, IReadOnlyList<StoredEvent>>> GetStatesAtTopologicalAsync(
        IReadOnlyList<(string RoomId, long Topological)> points, IReadOnlyDictionary<string, CurrentRoomState> current)
    {
        var result = new Dictionary<string, List<StoredEvent>>(points.Count, StringComparer.Ordinal);
        var (rooms, types, keys, tops) = (new List<string>(), new List<string>(), new List<string>(), new List<long>());
        foreach (var (roomId, topological) in points)
        {
            var state = current[roomId];
            var kept = new List<StoredEvent>(state.Events.Count);
            foreach (var e in state.Events)
            {
                if (e.StateKey is null) continue;
                if (e.Topological <= topological) kept.Add(e);
                else
                {
                    rooms.Add(roomId);
                    types.Add(e.Type);
                    keys.Add(e.StateKey);
                    tops.Add(topological);
                }
            }
            result[roomId] = kept;
        }
        if (rooms.Count > 0)
        {
            await using var cmd = db.CreateCommand(
                $"""
                 SELECT {Prefixed("e")} FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS q(room_id, type, state_key, upto)
                 CROSS JOIN LATERAL (SELECT * FROM events
                                      WHERE events.room_id = q.room_id AND events.type = q.type AND events.state_key = q.state_key
                                        AND topological <= q.upto
                                      ORDER BY topological DESC LIMIT 1) e
                 """);
            cmd.Parameters.AddWithValue(rooms.ToArray());
            cmd.Parameters.AddWithValue(types.ToArray());
            cmd.Parameters.AddWithValue(keys.ToArray());
            cmd.Parameters.AddWithValue(tops.ToArray());
            foreach (var e in await ReadEventsAsync(cmd)) result[e.RoomId].Add(e);
        }
        return result.ToDictionary(r => r.Key, r => (IReadOnlyList<StoredEvent>)r.Value, StringComparer.Ordinal);
    }

    /// <summary>The user's current membership of the room ("join", "invite", "leave", "ban", "knock") or null.</summary>
    public async Task<string?> GetMembershipAsync(string roomId, string userId) =>
        (await GetCurrentStateAsync(roomId)).Membership(userId);

    /// <summary>The state after the event at <paramref name="topological"/> (inclusive): the latest state event per
    /// (type, state_key) at or below it.</summary>
    public async Task<IReadOnlyList<StoredEvent>> GetStateAtTopologicalAsync(string roomId, long topological)
    {
        await using var cmd = db.CreateCommand(
            $"""
             SELECT DISTINCT ON (type, state_key) {EventColumns} FROM events
              WHERE room_id = $1 AND state_key IS NOT NULL AND topological <= $2
              ORDER BY type, state_key, topological DESC
             """);
        cmd.Parameters.AddWithValue(roomId);
        cmd.Parameters.AddWithValue(topological);
        return await ReadEventsAsync(cmd);
    }

    /// <summary>The state a reader may see: current (<paramref name="upTo"/> null), or as of the event at
    /// <paramref name="upTo"/> (e.g. a departed member's leave, see <see cref="RoomVisibility.RequireReadableAsync"/>).</summary>
    public async Task<IReadOnlyList<StoredEvent>> GetStateUpToAsync(string roomId, long? upTo) =>
        upTo is { } point ? await GetStateAtTopologicalAsync(roomId, point) : (await GetCurrentStateAsync(roomId)).Events;

    /// <summary>One state entry as of the event at <paramref name="topological"/> (inclusive), or null.</summary>
    public async Task<StoredEvent?> GetStateEventAtAsync(string roomId, string type, string stateKey, long topological)
    {
        await using var cmd = db.CreateCommand(
            $"""
             SELECT {EventColumns} FROM events
              WHERE room_id = $1 AND type = $2 AND state_key = $3 AND topological <= $4
              ORDER BY topological DESC LIMIT 1
             """);
        cmd.Parameters.AddWithValue(roomId);
        cmd.Parameters.AddWithValue(type);
        cmd.Parameters.AddWithValue(stateKey);
        cmd.Parameters.AddWithValue(topological);
        return (await ReadEventsAsync(cmd)).FirstOrDefault();
    }

    /// <summary>The state as of a stream position of the room's writer (inclusive), e.g. a sync token's
    /// <c>token.Get("events", WriterOf(roomId))</c>.</summary>
    public async Task<IReadOnlyList<StoredEvent>> GetStateAtStreamAsync(string roomId, long streamPosition)
    {
        await using var cmd = db.CreateCommand(
            $"""
             SELECT DISTINCT ON (type, state_key) {EventColumns} FROM events
              WHERE room_id = $1 AND state_key IS NOT NULL AND stream_position <= $2
              ORDER BY type, state_key, topological DESC
             """);
        cmd.Parameters.AddWithValue(roomId);
        cmd.Parameters.AddWithValue(streamPosition);
        return await ReadEventsAsync(cmd);
    }

    /// <summary>
    /// The room's events with stream position in (<paramref name="fromExclusive"/>, <paramref name="toInclusive"/>]:
    /// the latest <paramref name="limit"/> of them, chronologically; <c>Limited</c> when older ones were left out
    /// (a /sync timeline gap).
    /// </summary>
    public async Task<(IReadOnlyList<StoredEvent> Events, bool Limited)> GetEventsByStreamAsync(
        string roomId, long fromExclusive, long toInclusive, int limit)
    {
        await using var cmd = db.CreateCommand(
            $"""
             SELECT {EventColumns} FROM events
              WHERE room_id = $1 AND stream_position > $2 AND stream_position <= $3
              ORDER BY stream_position DESC LIMIT $4
             """);
        cmd.Parameters.AddWithValue(roomId);
        cmd.Parameters.AddWithValue(fromExclusive);
        cmd.Parameters.AddWithValue(toInclusive);
        cmd.Parameters.AddWithValue(limit + 1);
        var events = await ReadEventsAsync(cmd);
        var limited = events.Count > limit;
        var page = events.Take(limit).Reverse().ToList();
        return (page, limited);
    }

    /// <summary>The room's first <paramref name="limit"/> events with stream position in (<paramref name="fromExclusive"/>,
    /// <paramref name="toInclusive"/>], oldest first (the legacy /events stream reads forwards).</summary>
    public async Task<IReadOnlyList<StoredEvent>> GetEventsAfterStreamAsync(string roomId, long fromExclusive, long toInclusive, int limit)
    {
        await using var cmd = db.CreateCommand(
            $"""
             SELECT {EventColumns} FROM events
              WHERE room_id = $1 AND stream_position > $2 AND stream_position <= $3
              ORDER BY stream_position LIMIT $4
             """);
        cmd.Parameters.AddWithValue(roomId);
        cmd.Parameters.AddWithValue(fromExclusive);
        cmd.Parameters.AddWithValue(toInclusive);
        cmd.Parameters.AddWithValue(limit);
        return await ReadEventsAsync(cmd);
    }

    /// <summary>
    /// Events of the rooms the user is joined to, sent by others since the user joined, with stream position below
    /// <paramref name="beforeExclusive"/>: the latest <paramref name="limit"/> of them, newest first (GET /notifications
    /// reads backwards across rooms).
    /// </summary>
    public async Task<IReadOnlyList<StoredEvent>> GetJoinedRoomsEventsBeforeAsync(string userId, long beforeExclusive, int limit)
    {
        await using var cmd = db.CreateCommand(
            $"""
             SELECT {Prefixed("e")} FROM events e JOIN room_memberships m ON m.room_id = e.room_id
              WHERE m.user_id = $1 AND m.membership = 'join' AND e.stream_position > m.stream_position
                AND e.stream_position < $2 AND e.sender <> $1 AND e.redacted_because IS NULL
              ORDER BY e.stream_position DESC LIMIT $3
             """);
        cmd.Parameters.AddWithValue(userId);
        cmd.Parameters.AddWithValue(beforeExclusive);
        cmd.Parameters.AddWithValue(limit);
        return await ReadEventsAsync(cmd);
    }

    /// <summary>
    /// What may concern a pusher of the user, oldest first: events in (<paramref name="afterExclusive"/>,
    /// <paramref name="upToInclusive"/>] of the rooms the user is joined to, sent by others since the user joined,
    /// and the user's invites.
    /// </summary>
    public async Task<IReadOnlyList<StoredEvent>> GetPushCandidatesAsync(string userId, long afterExclusive, long upToInclusive, int limit)
    {
        await using var cmd = db.CreateCommand(
            $"""
             SELECT * FROM (
                 SELECT {Prefixed("e")} FROM events e JOIN room_memberships m ON m.room_id = e.room_id
                  WHERE m.user_id = $1 AND m.membership = 'join' AND e.stream_position > m.stream_position
                    AND e.stream_position > $2 AND e.stream_position <= $3 AND e.sender <> $1 AND e.redacted_because IS NULL
                 UNION ALL
                 SELECT {Prefixed("e")} FROM room_memberships m JOIN events e ON e.event_id = m.event_id
                  WHERE m.user_id = $1 AND m.membership = 'invite' AND m.stream_position > $2 AND m.stream_position <= $3
             ) candidates ORDER BY stream_position LIMIT $4
             """);
        cmd.Parameters.AddWithValue(userId);
        cmd.Parameters.AddWithValue(afterExclusive);
        cmd.Parameters.AddWithValue(upToInclusive);
        cmd.Parameters.AddWithValue(limit);
        return await ReadEventsAsync(cmd);
    }

    /// <summary>
    /// A page of the room's history by topological position, for /messages and /context: backwards, events with
    /// topological &lt; <paramref name="fromExclusive"/> newest first; forwards, events with topological &gt;
    /// <paramref name="fromExclusive"/> oldest first. <paramref name="toExclusive"/> bounds the other end.
    /// Returned in the direction of travel (as /messages wants its <c>chunk</c>).
    /// </summary>
    public async Task<IReadOnlyList<StoredEvent>> GetEventsByTopologicalAsync(
        string roomId, long fromExclusive, Direction direction, int limit, long? toExclusive = null)
    {
        var backwards = direction == Direction.Backwards;
        await using var cmd = db.CreateCommand(
            $"""
             SELECT {EventColumns} FROM events
              WHERE room_id = $1 AND topological {(backwards ? "<" : ">")} $2 AND topological {(backwards ? ">" : "<")} $3
              ORDER BY topological {(backwards ? "DESC" : "ASC")} LIMIT $4
             """);
        cmd.Parameters.AddWithValue(roomId);
        cmd.Parameters.AddWithValue(fromExclusive);
        cmd.Parameters.AddWithValue(toExclusive ?? (backwards ? 0L : long.MaxValue));
        cmd.Parameters.AddWithValue(limit);
        return await ReadEventsAsync(cmd);
    }

    /// <summary>The highest topological position of the room (0 when it has no events).</summary>
    public async Task<long> GetMaxTopologicalAsync(string roomId)
    {
        await using var cmd = db.CreateCommand("SELECT coalesce(max(topological), 0) FROM events WHERE room_id = $1");
        cmd.Parameters.AddWithValue(roomId);
        return (long)(await cmd.ExecuteScalarAsync())!;
    }

    /// <summary>Every current membership of the user (forgotten ones included, flagged).</summary>
    public async Task<IReadOnlyList<UserRoomMembership>> GetMembershipsForUserAsync(string userId) =>
        await caches.Get<IReadOnlyList<UserRoomMembership>>(RoomCaches.UserMemberships).GetOrLoadAsync(userId, async id =>
        {
            await using var cmd = db.CreateCommand(
                """
                SELECT room_id, membership, event_id, sender, stream_writer, stream_position, topological, forgotten
                  FROM room_memberships WHERE user_id = $1 ORDER BY room_id
                """);
            cmd.Parameters.AddWithValue(id);
            var list = new List<UserRoomMembership>();
            await using var reader = await cmd.ExecuteReaderAsync();
            while (await reader.ReadAsync())
                list.Add(new UserRoomMembership(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3),
                    reader.GetInt32(4), reader.GetInt64(5), reader.GetInt64(6), reader.GetBoolean(7)));
            return list;
        });

    /// <summary>The rooms the user is joined to.</summary>
    public async Task<IReadOnlyList<string>> GetJoinedRoomsAsync(string userId) =>
        (await GetMembershipsForUserAsync(userId)).Where(m => m.Membership == "join").Select(m => m.RoomId).ToList();

    /// <summary>
    /// The user's membership changes with stream positions after <paramref name="from"/> and at or before
    /// <paramref name="to"/>, compared writer by writer; in stream order per writer.
    /// </summary>
    public async Task<IReadOnlyList<MembershipChange>> GetMembershipChangesAsync(string userId, StreamToken from, StreamToken to)
    {
        var writers = Enumerable.Range(0, shards.Current.WriterCount).ToArray();
        await using var cmd = db.CreateCommand(
            """
            SELECT h.room_id, h.user_id, h.membership, h.event_id, h.sender, h.stream_writer, h.stream_position, h.topological
              FROM room_membership_history h
              JOIN unnest($2::integer[], $3::bigint[], $4::bigint[]) AS w(writer, f, t) ON h.stream_writer = w.writer
             WHERE h.user_id = $1 AND h.stream_position > w.f AND h.stream_position <= w.t
             ORDER BY h.stream_writer, h.stream_position
            """);
        cmd.Parameters.AddWithValue(userId);
        cmd.Parameters.AddWithValue(writers);
        cmd.Parameters.AddWithValue(writers.Select(w => from.Get(StreamNames.Events, w)).ToArray());
        cmd.Parameters.AddWithValue(writers.Select(w => to.Get(StreamNames.Events, w)).ToArray());
        var list = new List<MembershipChange>();
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync())
            list.Add(new MembershipChange(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3),
                reader.GetString(4), reader.GetInt32(5), reader.GetInt64(6), reader.GetInt64(7)));
        return list;
    }

    /// <summary>The user's membership right after the event at <paramref name="topological"/> (null: none yet).</summary>
    public async Task<string?> GetMembershipAtAsync(string roomId, string userId, long topological)
    {
        await using var cmd = db.CreateCommand(
            """
            SELECT membership FROM room_membership_history
             WHERE room_id = $1 AND user_id = $2 AND topological <= $3 ORDER BY topological DESC LIMIT 1
            """);
        cmd.Parameters.AddWithValue(roomId);
        cmd.Parameters.AddWithValue(userId);
        cmd.Parameters.AddWithValue(topological);
        return await cmd.ExecuteScalarAsync() as string;
    }

    /// <summary>The room an alias points at, or null.</summary>
    public async Task<string?> ResolveAliasAsync(string alias)
    {
        await using var cmd = db.CreateCommand("SELECT room_id FROM room_aliases WHERE alias = $1");
        cmd.Parameters.AddWithValue(alias);
        return await cmd.ExecuteScalarAsync() as string;
    }

    /// <summary>Where the user's current membership event of the room sits (for reads limited to "while joined").</summary>
    public async Task<UserRoomMembership?> GetUserMembershipAsync(string roomId, string userId) =>
        (await GetMembershipsForUserAsync(userId)).FirstOrDefault(m => m.RoomId == roomId);

    internal static string Prefixed(string alias) =>
        string.Join(", ", EventColumns.Split(", ").Select(c => $"{alias}.{c}"));

    internal static async Task<List<StoredEvent>> ReadEventsAsync(NpgsqlCommand cmd)
    {
        var list = new List<StoredEvent>();
        var strings = new EventStrings.Pool();
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync()) list.Add(ReadEvent(reader, strings: strings));
        return list;
    }

    /// <summary>The event in the current row, its <see cref="EventColumns"/> starting at column <paramref name="offset"/>;
    /// with <paramref name="strings"/>, its room id, state key and sender shared with the other rows read (a room's
    /// state read into the cache repeats them in every event).</summary>
    internal static StoredEvent ReadEvent(NpgsqlDataReader reader, int offset = 0, EventStrings.Pool? strings = null)
    {
        var o = offset;
        string roomId = reader.GetString(o + 1), sender = reader.GetString(o + 4);
        var stateKey = reader.IsDBNull(o + 3) ? null : reader.GetString(o + 3);
        if (strings is not null) (roomId, stateKey, sender) = (strings.Share(roomId), strings.ShareOrNull(stateKey), strings.Share(sender));
        return new StoredEvent(
            reader.GetString(o), roomId, EventStrings.Type(reader.GetString(o + 2)), stateKey,
            sender, reader.GetInt64(o + 5), reader.GetInt64(o + 6), reader.GetInt32(o + 7), reader.GetInt64(o + 8),
            // The JSON's bytes as they come (text arrives in the connection's client encoding, UTF-8): a full-state sync
            // reads 90,000 of them, each decoded to a UTF-16 string and encoded back before.
            reader.GetFieldValue<byte[]>(o + 9), reader.IsDBNull(o + 10) ? null : reader.GetString(o + 10), reader.IsDBNull(o + 11) ? null : reader.GetString(o + 11),
            reader.GetBoolean(o + 12));
    }
}

using System.Text.Json.Nodes;
using Homeserver.Caches;
using Npgsql;

namespace Homeserver.Rooms;

/// <summary>What relates to one event, as far as clients are told in its <c>unsigned.m.relations</c>.</summary>
/// <param name="ThreadCount">Replies in the thread the event is the root of (0: none).</param>
/// <param name="ThreadLatest">The newest reply.</param>
/// <param name="ThreadParticipants">Everyone who replied in the thread.</param>
/// <param name="LatestEdit">The newest replacement by the event's own sender.</param>
/// <param name="References">Events that reference it (<c>m.reference</c>), in room order.</param>
public sealed record RelationSummary(int ThreadCount, StoredEvent? ThreadLatest, string[] ThreadParticipants, StoredEvent? LatestEdit,
    string[] References)
{
    public static readonly RelationSummary None = new(0, null, [], null, []);

    public bool IsEmpty => ThreadCount == 0 && LatestEdit is null && References.Length == 0;
}

/// <summary>A page of a room's threads: each root with its latest reply's position (the order of the list).</summary>
public sealed record ThreadPage(IReadOnlyList<StoredEvent> Roots, long? NextBefore);

/// <summary>
/// Relations between events (spec "Forming relationships between events", "Threading", "Event replacements",
/// "Reference relations"): the <c>event_relations</c> index the event persister keeps, read for
/// <c>GET /relations</c> and <c>GET /threads</c>, and the bundled aggregations added to every event served. The
/// summaries are cached per silo by parent event id; <see cref="RoomCacheHandler"/> drops a parent's summary before the
/// reader passes a row that relates to it (or redacts something that did), and records that a new event has none, so
/// a timeline of recent events costs no query at all.
/// </summary>
public sealed class RoomRelations(NpgsqlDataSource db, CacheRegistry caches, RoomEventStore events)
{
    /// <summary>Parent event id → <see cref="RelationSummary"/>.</summary>
    public const string Cache = "rooms.relations";

    /// <summary>How deep <c>recurse=true</c> follows relations of relations (spec: at least 3; Synapse's value).</summary>
    public const int MaxRecursionDepth = 3;

    private readonly SiloCache<RelationSummary> _summaries = caches.Get<RelationSummary>(Cache, 50_000);

    /// <summary>Called by the cache handler for a new event row: nothing relates to an event that did not exist. Only
    /// for events that are not state: bundled aggregations are looked up for timeline events that are not state
    /// (<see cref="BundleAsync"/>, the sync's prefetch), so a summary of a join is never read, and the joins of a busy
    /// silo (90,000 building 300 rooms of 300) would fill the cache with them, pushing out the messages' summaries.</summary>
    internal void RecordNew(string eventId, bool isState)
    {
        if (!isState) _summaries.Store(eventId, RelationSummary.None, _summaries.Generation);
    }

    /// <summary>
    /// A page of the events relating to <paramref name="parentId"/> (optionally of one relation and event type), by
    /// topological position: backwards below <paramref name="fromExclusive"/> (newest first) or forwards above it. With
    /// <paramref name="recurse"/>, relations of those events too, down to <see cref="MaxRecursionDepth"/>.
    /// </summary>
    public async Task<IReadOnlyList<StoredEvent>> GetChildrenAsync(string roomId, string parentId, string? relType, string? eventType,
        bool recurse, long fromExclusive, long? toExclusive, bool backwards, int limit)
    {
        var depth = recurse ? MaxRecursionDepth : 1;
        await using var cmd = db.CreateCommand(
            $"""
             WITH RECURSIVE related (event_id, depth) AS (
                 SELECT event_id, 1 FROM event_relations
                  WHERE relates_to_id = $2 AND room_id = $1 AND ($3::text IS NULL OR rel_type = $3) AND ($4::text IS NULL OR type = $4)
                 UNION
                 SELECT r.event_id, related.depth + 1 FROM event_relations r JOIN related ON r.relates_to_id = related.event_id
                  WHERE related.depth < $5 AND r.room_id = $1 AND ($3::text IS NULL OR r.rel_type = $3) AND ($4::text IS NULL OR r.type = $4)
             )
             SELECT {RoomEventStore.EventColumns} FROM events
              WHERE event_id IN (SELECT event_id FROM related)
                AND topological {(backwards ? "<" : ">")} $6 AND topological {(backwards ? ">" : "<")} $7
              ORDER BY topological {(backwards ? "DESC" : "ASC")} LIMIT $8
             """);
        cmd.Parameters.AddWithValue(roomId);
        cmd.Parameters.AddWithValue(parentId);
        cmd.Parameters.Add(new NpgsqlParameter { Value = (object?)relType ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        cmd.Parameters.Add(new NpgsqlParameter { Value = (object?)eventType ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        cmd.Parameters.AddWithValue(depth);
        cmd.Parameters.AddWithValue(fromExclusive);
        cmd.Parameters.AddWithValue(toExclusive ?? (backwards ? 0L : long.MaxValue));
        cmd.Parameters.AddWithValue(limit);
        return await RoomEventStore.ReadEventsAsync(cmd);
    }

    /// <summary>
    /// A page of the room's thread roots, those with the latest reply first, below <paramref name="beforeExclusive"/>
    /// (the latest reply's topological position); with <paramref name="participant"/>, only threads they started or
    /// replied in.
    /// </summary>
    public async Task<ThreadPage> GetThreadsAsync(string roomId, string? participant, long beforeExclusive, int limit)
    {
        await using var cmd = db.CreateCommand(
            $"""
             WITH threads AS (
                 SELECT relates_to_id AS root, max(topological) AS latest, bool_or(sender = $2) AS replied
                   FROM event_relations WHERE room_id = $1 AND rel_type = 'm.thread'
                  GROUP BY relates_to_id
             )
             SELECT threads.latest, {RoomEventStore.Prefixed("e")}
               FROM threads JOIN events e ON e.event_id = threads.root
              WHERE threads.latest < $3 AND ($2::text IS NULL OR threads.replied OR e.sender = $2)
              ORDER BY threads.latest DESC LIMIT $4
             """);
        cmd.Parameters.AddWithValue(roomId);
        cmd.Parameters.Add(new NpgsqlParameter { Value = (object?)participant ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        cmd.Parameters.AddWithValue(beforeExclusive);
        cmd.Parameters.AddWithValue(limit + 1);
        var roots = new List<StoredEvent>();
        var latest = new List<long>();
        await using (var reader = await cmd.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                latest.Add(reader.GetInt64(0));
                roots.Add(RoomEventStore.ReadEvent(reader, offset: 1));
            }
        }
        if (roots.Count <= limit) return new ThreadPage(roots, null);
        return new ThreadPage(roots.Take(limit).ToList(), latest[limit - 1]);
    }

    /// <summary>
    /// Adds <c>unsigned.m.relations</c> (spec "Aggregations of child events": <c>m.thread</c> with the latest reply, the
    /// count and whether the user took part; <c>m.replace</c>, the newest edit by the original sender, whole;
    /// <c>m.reference</c>, the referencing event ids) to each served event that has any. Redacted events get none.
    /// </summary>
    public async Task BundleAsync(string userId, IReadOnlyList<(StoredEvent Event, JsonObject Client)> served,
        Func<StoredEvent, JsonObject> render)
    {
        if (served.Count == 0) return;
        var summaries = await GetSummariesAsync(served.Where(s => !s.Event.Redacted && s.Event.StateKey is null).Select(s => s.Event.EventId));
        foreach (var (ev, client) in served)
        {
            if (!summaries.TryGetValue(ev.EventId, out var summary) || summary.IsEmpty) continue;
            var relations = new JsonObject();
            if (summary.ThreadCount > 0 && summary.ThreadLatest is { } latest)
                relations["m.thread"] = new JsonObject
                {
                    ["latest_event"] = render(latest),
                    ["count"] = summary.ThreadCount,
                    ["current_user_participated"] = ev.Sender == userId || summary.ThreadParticipants.Contains(userId, StringComparer.Ordinal),
                };
            if (summary.LatestEdit is { } edit) relations["m.replace"] = render(edit);
            if (summary.References.Length > 0)
                relations["m.reference"] = new JsonObject
                {
                    ["chunk"] = new JsonArray(summary.References.Select(id => (JsonNode)new JsonObject { ["event_id"] = id }).ToArray()),
                };
            var unsigned = client["unsigned"] as JsonObject ?? new JsonObject();
            unsigned["m.relations"] = relations;
            client["unsigned"] = unsigned;
        }
    }

    /// <summary>Events in the client format with their bundled aggregations (for /event, /context, /relations).</summary>
    public async Task<JsonArray> ToClientArrayAsync(IEnumerable<StoredEvent> events, string userId, string? deviceId)
    {
        var served = events.Select(e => (e, RoomEventFormat.ToClient(e, userId, deviceId))).ToList();
        await BundleAsync(userId, served, e => RoomEventFormat.ToClient(e, userId, deviceId));
        return new JsonArray(served.Select(s => (JsonNode)s.Item2).ToArray());
    }

    public async Task<JsonObject> ToClientAsync(StoredEvent ev, string userId, string? deviceId)
    {
        var client = RoomEventFormat.ToClient(ev, userId, deviceId);
        await BundleAsync(userId, [(ev, client)], e => RoomEventFormat.ToClient(e, userId, deviceId));
        return client;
    }

    /// <summary>The summaries of these events: cached ones, the rest read in one round trip.</summary>
    /// <summary>Reads the summaries of many events into this silo's cache in one round trip (a sync from scratch
    /// bundles every room's timeline, one room at a time).</summary>
    public async Task PrefetchAsync(IEnumerable<string> eventIds) => await GetSummariesAsync(eventIds);

    private async Task<Dictionary<string, RelationSummary>> GetSummariesAsync(IEnumerable<string> eventIds)
    {
        var found = new Dictionary<string, RelationSummary>(StringComparer.Ordinal);
        var missing = new List<string>();
        foreach (var id in eventIds.Distinct(StringComparer.Ordinal))
        {
            if (_summaries.TryGet(id, out var cached)) found[id] = cached;
            else missing.Add(id);
        }
        if (missing.Count == 0) return found;

        var generation = _summaries.Generation;
        await using var batch = db.CreateBatch();
        // Counts and participants of threads, and the references.
        batch.BatchCommands.Add(new NpgsqlBatchCommand(
            """
            SELECT relates_to_id, rel_type, count(*)::int, array_agg(DISTINCT sender), array_agg(event_id ORDER BY topological)
              FROM event_relations WHERE relates_to_id = ANY($1) AND rel_type IN ('m.thread', 'm.reference')
             GROUP BY relates_to_id, rel_type
            """) { Parameters = { new() { Value = missing.ToArray() } } });
        // The newest reply of each thread, and the newest edit by each event's own sender (of the same type: spec
        // "Validity of replacement events").
        batch.BatchCommands.Add(new NpgsqlBatchCommand(
            """
            SELECT DISTINCT ON (relates_to_id) relates_to_id, event_id, 'm.thread'
              FROM event_relations WHERE relates_to_id = ANY($1) AND rel_type = 'm.thread'
             ORDER BY relates_to_id, topological DESC
            """) { Parameters = { new() { Value = missing.ToArray() } } });
        batch.BatchCommands.Add(new NpgsqlBatchCommand(
            """
            SELECT DISTINCT ON (r.relates_to_id) r.relates_to_id, r.event_id, 'm.replace'
              FROM event_relations r JOIN events p ON p.event_id = r.relates_to_id
             WHERE r.relates_to_id = ANY($1) AND r.rel_type = 'm.replace' AND r.sender = p.sender AND r.type = p.type
             ORDER BY r.relates_to_id, r.topological DESC
            """) { Parameters = { new() { Value = missing.ToArray() } } });

        var counts = new Dictionary<string, (int Count, string[] Participants)>(StringComparer.Ordinal);
        var references = new Dictionary<string, string[]>(StringComparer.Ordinal);
        var latest = new List<(string Parent, string EventId, string Kind)>();
        await using (var reader = await batch.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                var parent = reader.GetString(0);
                if (reader.GetString(1) == "m.thread") counts[parent] = (reader.GetInt32(2), reader.GetFieldValue<string[]>(3));
                else references[parent] = reader.GetFieldValue<string[]>(4);
            }
            for (var i = 0; i < 2; i++)
            {
                await reader.NextResultAsync();
                while (await reader.ReadAsync()) latest.Add((reader.GetString(0), reader.GetString(1), reader.GetString(2)));
            }
        }
        var children = new Dictionary<string, StoredEvent>(StringComparer.Ordinal);
        foreach (var (_, id, _) in latest)
            if (await events.GetEventAsync(id) is { } child) children[id] = child;

        foreach (var id in missing)
        {
            var thread = counts.GetValueOrDefault(id);
            var latestReply = latest.FirstOrDefault(l => l.Parent == id && l.Kind == "m.thread").EventId;
            var latestEdit = latest.FirstOrDefault(l => l.Parent == id && l.Kind == "m.replace").EventId;
            var summary = new RelationSummary(thread.Count, latestReply is null ? null : children.GetValueOrDefault(latestReply),
                thread.Participants ?? [], latestEdit is null ? null : children.GetValueOrDefault(latestEdit),
                references.GetValueOrDefault(id) ?? []);
            if (summary.IsEmpty) summary = RelationSummary.None;
            _summaries.Store(id, summary, generation);
            found[id] = summary;
        }
        return found;
    }
}

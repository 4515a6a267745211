using System.Globalization;
using System.Text.Json.Nodes;
using Homeserver.Errors;
using Homeserver.Matrix;
using Homeserver.Rooms;
using Homeserver.Streams;
using Homeserver.Sync;
using Npgsql;

namespace Homeserver.Search;

/// <summary>
/// <c>POST /search</c> for <c>room_events</c> (spec "Server Side Search") on PostgreSQL full-text search: the
/// <c>event_search</c> rows the event persister writes (a message's body, a room's name and topic, as tsvectors with a
/// GIN index), in the rooms the user is joined to, ranked by <c>ts_rank</c> or newest first, then filtered to what the
/// user may see (history visibility, erasure) before anything is returned, so nobody finds what they cannot read.
/// The search term goes through <c>websearch_to_tsquery</c>, which accepts any input (quotes, <c>-</c>, <c>or</c>)
/// without a syntax error. Pages are offsets into the ranked candidates (<c>next_batch</c>).
/// </summary>
public sealed class EventSearch(NpgsqlDataSource db, RoomEventStore rooms, RoomVisibility visibility, ErasedSenders erased,
    RoomRelations relations, ReplicationBarrier barrier)
{
    public const int DefaultLimit = 10, MaxLimit = 100, DefaultContext = 5, MaxContext = 20, MaxTermLength = 1000;

    /// <summary>Candidate pages read per request when visibility hides results: bounds a search's work.</summary>
    private const int MaxCandidatePages = 5;

    private static readonly string[] AllKeys = ["content.body", "content.name", "content.topic"];

    public async Task<JsonObject> SearchAsync(Accounts.Requester requester, JsonObject body, string? nextBatch, CancellationToken ct)
    {
        if (body["search_categories"] is not JsonObject categories) throw MatrixException.BadJson("'search_categories' must be an object");
        var response = new JsonObject();
        if (categories["room_events"] is JsonObject criteria)
            response["room_events"] = await SearchRoomEventsAsync(requester, criteria, nextBatch, ct);
        else if (categories["room_events"] is not null) throw MatrixException.BadJson("'room_events' must be an object");
        return new JsonObject { ["search_categories"] = response };
    }

    private async Task<JsonObject> SearchRoomEventsAsync(Accounts.Requester requester, JsonObject criteria, string? nextBatch, CancellationToken ct)
    {
        var term = ClientJson.OptionalString(criteria, "search_term") ?? throw MatrixException.MissingParam("Missing 'search_term'");
        if (term.Length > MaxTermLength) throw MatrixException.InvalidParam($"'search_term' is longer than {MaxTermLength} characters");
        var keys = criteria["keys"] is null ? AllKeys : SyncFilter.StringSet(criteria["keys"], "keys")!.ToArray();
        if (keys.FirstOrDefault(k => !AllKeys.Contains(k)) is { } badKey)
            throw MatrixException.InvalidParam($"Unknown search key '{Quote.Short(badKey)}'");
        var orderByRecent = ClientJson.OptionalString(criteria, "order_by") switch
        {
            null or "rank" => false,
            "recent" => true,
            _ => throw MatrixException.InvalidParam("'order_by' must be 'rank' or 'recent'"),
        };
        var filterJson = criteria["filter"] as JsonObject;
        if (criteria["filter"] is not null && filterJson is null) throw MatrixException.BadJson("'filter' must be an object");
        var filter = EventFilter.Parse(filterJson);
        var limit = Math.Clamp(filter.Limit ?? DefaultLimit, 1, MaxLimit);
        var offset = nextBatch is null ? 0
            : int.TryParse(nextBatch, NumberStyles.None, CultureInfo.InvariantCulture, out var o) ? o
            : throw MatrixException.InvalidParam("Malformed 'next_batch'");
        var context = criteria["event_context"] as JsonObject;
        var includeState = ClientJson.OptionalBool(criteria, "include_state");
        var groupBy = GroupBy(criteria);

        await barrier.WaitAsync([StreamNames.Events], TimeSpan.FromSeconds(5), ct);
        var joined = await rooms.GetJoinedRoomsAsync(requester.UserId);
        var wanted = SyncFilter.StringSet(filterJson?["rooms"], "rooms");
        var unwanted = SyncFilter.StringSet(filterJson?["not_rooms"], "not_rooms") ?? [];
        var searched = joined.Where(r => (wanted is null || wanted.Contains(r)) && !unwanted.Contains(r)).ToArray();

        var results = new List<(StoredEvent Event, double Rank)>();
        var count = 0L;
        var next = offset;
        var exhausted = searched.Length == 0;
        for (var page = 0; page < MaxCandidatePages && results.Count < limit && !exhausted; page++)
        {
            var (candidates, total) = await CandidatesAsync(searched, keys, term, filter, orderByRecent, next, limit, countTotal: page == 0);
            if (page == 0) count = total;
            next += candidates.Count;
            exhausted = candidates.Count < limit;
            foreach (var (ev, rank) in candidates)
            {
                if (!filter.Matches(ev) || !await visibility.CanSeeAsync(requester.UserId, ev)) continue;
                // An erased sender's message is found only by those it reaches unpruned.
                if ((await erased.ForViewerAsync(requester.UserId, ev.RoomId, [ev]))[0].Json != ev.Json) continue;
                results.Add((ev, rank));
                if (results.Count == limit) break;
            }
        }

        var served = results.Select(r => (r.Event, RoomEventFormat.ToClient(r.Event, requester.UserId, requester.DeviceId))).ToList();
        await relations.BundleAsync(requester.UserId, served, e => RoomEventFormat.ToClient(e, requester.UserId, requester.DeviceId));
        var resultsJson = new JsonArray();
        for (var i = 0; i < results.Count; i++)
        {
            var entry = new JsonObject { ["rank"] = results[i].Rank, ["result"] = served[i].Item2 };
            if (context is not null) entry["context"] = await ContextAsync(requester, results[i].Event, context);
            resultsJson.Add(entry);
        }
        var answer = new JsonObject
        {
            ["count"] = count,
            ["highlights"] = new JsonArray(Highlights(term).Select(h => (JsonNode)h).ToArray()),
            ["results"] = resultsJson,
        };
        if (!exhausted) answer["next_batch"] = next.ToString(CultureInfo.InvariantCulture);
        if (groupBy.Count > 0) answer["groups"] = Groups(groupBy, results.Select(r => r.Event).ToList(), exhausted ? null : answer["next_batch"]!.GetValue<string>());
        if (includeState)
        {
            var state = new JsonObject();
            foreach (var roomId in results.Select(r => r.Event.RoomId).Distinct(StringComparer.Ordinal))
                state[roomId] = RoomEventFormat.ToClientArray((await rooms.GetCurrentStateAsync(roomId)).Events);
            answer["state"] = state;
        }
        return answer;
    }

    /// <summary>One page of matching events in the searched rooms, best (or newest) first, and on the first page the
    /// number of matches in all.</summary>
    private async Task<(List<(StoredEvent, double)> Page, long Total)> CandidatesAsync(string[] roomIds, string[] keys, string term,
        EventFilter filter, bool recent, int offset, int limit, bool countTotal)
    {
        const string Where =
            """
            s.room_id = ANY($1) AND s.key = ANY($2) AND s.vector @@ websearch_to_tsquery('english', $3)
              AND ($4::text[] IS NULL OR s.sender = ANY($4)) AND NOT (s.sender = ANY($5))
            """;
        await using var batch = db.CreateBatch();
        var order = recent ? "s.stream_position DESC, s.event_id" : "rank DESC, s.stream_position DESC, s.event_id";
        batch.BatchCommands.Add(new NpgsqlBatchCommand(
            $"""
             SELECT ts_rank(s.vector, websearch_to_tsquery('english', $3)) AS rank, {RoomEventStore.Prefixed("e")}
               FROM event_search s JOIN events e ON e.event_id = s.event_id
              WHERE {Where}
              ORDER BY {order} OFFSET $6 LIMIT $7
             """) { Parameters = { P(roomIds), P(keys), P(term), P(filter.Senders?.ToArray()), P(filter.NotSenders.ToArray()), P(offset), P(limit) } });
        if (countTotal)
            batch.BatchCommands.Add(new NpgsqlBatchCommand($"SELECT count(*) FROM event_search s WHERE {Where}")
            {
                Parameters = { P(roomIds), P(keys), P(term), P(filter.Senders?.ToArray()), P(filter.NotSenders.ToArray()) },
            });
        var page = new List<(StoredEvent, double)>();
        long total = 0;
        await using var reader = await batch.ExecuteReaderAsync();
        while (await reader.ReadAsync()) page.Add((RoomEventStore.ReadEvent(reader, offset: 1), reader.GetFloat(0)));
        if (countTotal && await reader.NextResultAsync() && await reader.ReadAsync()) total = reader.GetInt64(0);
        return (page, total);
    }

    private static NpgsqlParameter P(object? value) => value switch
    {
        null => new NpgsqlParameter { Value = DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Array | NpgsqlTypes.NpgsqlDbType.Text },
        _ => new NpgsqlParameter { Value = value },
    };

    /// <summary>The events around a result the user may see, the pagination tokens at its edges and, when asked, the
    /// profiles of their senders as the room's state has them.</summary>
    private async Task<JsonObject> ContextAsync(Accounts.Requester requester, StoredEvent ev, JsonObject options)
    {
        int Bound(string name)
        {
            if (options[name] is null) return DefaultContext;
            return options[name] is JsonValue v && v.TryGetValue<int>(out var n) && n >= 0
                ? Math.Min(n, MaxContext)
                : throw MatrixException.BadJson($"'event_context.{name}' must be a non-negative integer");
        }
        var before = new List<StoredEvent>();
        foreach (var e in await rooms.GetEventsByTopologicalAsync(ev.RoomId, ev.Topological, Direction.Backwards, Bound("before_limit")))
            if (await visibility.CanSeeAsync(requester.UserId, e)) before.Add(e);
        var after = new List<StoredEvent>();
        foreach (var e in await rooms.GetEventsByTopologicalAsync(ev.RoomId, ev.Topological, Direction.Forwards, Bound("after_limit")))
            if (await visibility.CanSeeAsync(requester.UserId, e)) after.Add(e);
        var context = new JsonObject
        {
            ["events_before"] = RoomEventFormat.ToClientArray(before, requester.UserId, requester.DeviceId),
            ["events_after"] = RoomEventFormat.ToClientArray(after, requester.UserId, requester.DeviceId),
            ["start"] = PaginationToken.Topological(before.Count > 0 ? before[^1].Topological : ev.Topological),
            ["end"] = PaginationToken.Topological(after.Count > 0 ? after[^1].Topological : ev.Topological),
        };
        if (ClientJson.OptionalBool(options, "include_profile"))
        {
            var state = await rooms.GetCurrentStateAsync(ev.RoomId);
            var profiles = new JsonObject();
            foreach (var sender in before.Concat(after).Append(ev).Select(e => e.Sender).Distinct(StringComparer.Ordinal))
            {
                var member = state.Get("m.room.member", sender);
                profiles[sender] = new JsonObject
                {
                    ["displayname"] = member is null ? null : RoomEventFormat.ContentString(member.Utf8Json, "displayname"),
                    ["avatar_url"] = member is null ? null : RoomEventFormat.ContentString(member.Utf8Json, "avatar_url"),
                };
            }
            context["profile_info"] = profiles;
        }
        return context;
    }

    private static List<string> GroupBy(JsonObject criteria)
    {
        if (criteria["groupings"] is null) return [];
        if (criteria["groupings"] is not JsonObject groupings || groupings["group_by"] is not JsonArray groups)
            throw MatrixException.BadJson("'groupings.group_by' must be an array");
        var keys = new List<string>();
        foreach (var group in groups)
        {
            var key = group is JsonObject g ? ClientJson.OptionalString(g, "key") : null;
            if (key is not ("room_id" or "sender")) throw MatrixException.InvalidParam("A grouping's 'key' must be 'room_id' or 'sender'");
            keys.Add(key);
        }
        return keys;
    }

    /// <summary>The results grouped by room or sender: each group's event ids in result order, the groups ordered by
    /// their best result.</summary>
    private static JsonObject Groups(List<string> keys, List<StoredEvent> results, string? nextBatch)
    {
        var groups = new JsonObject();
        foreach (var key in keys.Distinct())
        {
            var byKey = new JsonObject();
            var order = 1;
            foreach (var group in results.GroupBy(e => key == "room_id" ? e.RoomId : e.Sender))
            {
                var entry = new JsonObject
                {
                    ["order"] = order++,
                    ["results"] = new JsonArray(group.Select(e => (JsonNode)e.EventId).ToArray()),
                };
                if (nextBatch is not null) entry["next_batch"] = nextBatch;
                byKey[group.Key] = entry;
            }
            groups[key] = byKey;
        }
        return groups;
    }

    /// <summary>The words a client should highlight: the search term's words, as Synapse gives them.</summary>
    private static IEnumerable<string> Highlights(string term) =>
        term.Split([' ', '\t', '\n', '"', '\''], StringSplitOptions.RemoveEmptyEntries)
            .Select(w => w.Trim('-', '(', ')', '.', ',', '!', '?').ToLowerInvariant())
            .Where(w => w.Length > 0 && w != "or")
            .Distinct(StringComparer.Ordinal);
}

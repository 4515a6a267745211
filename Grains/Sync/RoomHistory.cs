using System.Text.Json.Nodes;
using Homeserver.Errors;
using Homeserver.Rooms;
using Homeserver.Streams;

namespace Homeserver.Sync;

/// <summary>A /messages request as the endpoint parsed it.</summary>
public sealed record MessagesRequest(string RoomId, string? From, string? To, bool Backwards, int Limit, string? Filter);

/// <summary>A /relations request as the endpoint parsed it.</summary>
public sealed record RelationsRequest(string RoomId, string EventId, string? RelType, string? EventType, string? From, string? To,
    bool Backwards, int Limit, bool Recurse);

/// <summary>A /threads request as the endpoint parsed it.</summary>
public sealed record ThreadsRequest(string RoomId, bool OnlyParticipated, string? From, int Limit);

/// <summary>
/// Pages of a room's history by topological position, within what the user may see (history visibility, and nothing
/// after they left): <c>GET /rooms/{roomId}/messages</c>, and the events relating to one event
/// (<c>GET /relations</c>) and the room's threads (<c>GET /threads</c>), from <see cref="RoomRelations"/>.
/// </summary>
public sealed class RoomHistory(RoomEventStore store, RoomVisibility visibility, ReplicationBarrier barrier, SyncHandler sync, ErasedSenders erased,
    RoomRelations relations)
{
    public const int MaxLimit = 1000;

    public async Task<JsonObject> GetMessagesAsync(Accounts.Requester requester, MessagesRequest request, CancellationToken ct)
    {
        await barrier.WaitAsync([StreamNames.Events], TimeSpan.FromSeconds(5), ct);
        var readableUpTo = await visibility.RequireReadableAsync(request.RoomId, requester.UserId);
        var roomFilter = request.Filter is null ? SyncFilter.Default : await sync.ResolveFilterAsync(requester.UserId, WrapRoomFilter(request.Filter));
        var filter = roomFilter.Timeline;

        var max = await store.GetMaxTopologicalAsync(request.RoomId);
        var cap = readableUpTo ?? max;   // a departed member reads up to their leave
        long from;
        if (request.From is null) from = request.Backwards ? cap + 1 : 0;
        else from = await ToTopologicalAsync(request.RoomId, request.From, request.Backwards, "from");
        if (request.Backwards) from = Math.Min(from, cap + 1);
        long? to = request.To is null ? null : await ToTopologicalAsync(request.RoomId, request.To, request.Backwards, "to");
        if (!request.Backwards) to = Math.Min(to ?? long.MaxValue, cap + 1);

        var limit = Math.Clamp(request.Limit, 0, MaxLimit);
        var page = limit == 0 ? [] : await store.GetEventsByTopologicalAsync(
            request.RoomId, from, request.Backwards ? Direction.Backwards : Direction.Forwards, limit, to);

        var served = new List<(StoredEvent, JsonObject)>();
        foreach (var e in await erased.ForViewerAsync(requester.UserId, request.RoomId, page))
        {
            if (!filter.Matches(e)) continue;
            if (!await visibility.CanSeeAsync(requester.UserId, e)) continue;
            served.Add((e, RoomEventFormat.ToClient(e, requester.UserId, requester.DeviceId)));
        }
        await relations.BundleAsync(requester.UserId, served, e => RoomEventFormat.ToClient(e, requester.UserId, requester.DeviceId));
        var chunk = new JsonArray(served.Select(s => (JsonNode)s.Item2).ToArray());

        var response = new JsonObject
        {
            ["start"] = request.From ?? PaginationToken.Topological(from),
            ["chunk"] = chunk,
        };
        // 'end' comes with every page that has events, as Synapse answers (SyTest and clients page on until a page
        // comes back empty, which has none): only an empty page says there is nothing further.
        if (page.Count > 0) response["end"] = PaginationToken.Topological(page[^1].Topological);
        // Lazy-loaded members: the member events of the page's senders, as the room's state stood at the page.
        if (roomFilter.LazyLoadMembers && page.Count > 0)
        {
            var senders = page.Select(e => e.Sender).ToHashSet(StringComparer.Ordinal);
            var oldest = request.Backwards ? page[^1] : page[0];
            var state = new JsonArray();
            foreach (var e in await store.GetStateAtTopologicalAsync(request.RoomId, oldest.Topological))
                if (e.Type == "m.room.member" && e.StateKey is not null && senders.Contains(e.StateKey))
                    state.Add(RoomEventFormat.ToClient(e));
            response["state"] = state;
        }
        return response;
    }

    /// <summary>
    /// The events relating to one (spec "GET /relations"): 404 when the parent is unknown or the user may not see it;
    /// only children the user may see; <c>next_batch</c> while a page comes back full; with <c>recurse</c>, relations of
    /// relations to <see cref="RoomRelations.MaxRecursionDepth"/>.
    /// </summary>
    public async Task<JsonObject> GetRelationsAsync(Accounts.Requester requester, RelationsRequest request, CancellationToken ct)
    {
        await barrier.WaitAsync([StreamNames.Events], TimeSpan.FromSeconds(5), ct);
        await visibility.RequireReadableAsync(request.RoomId, requester.UserId);
        var parent = await store.GetEventAsync(request.EventId);
        if (parent is null || parent.RoomId != request.RoomId || !await visibility.CanSeeAsync(requester.UserId, parent))
            throw MatrixException.NotFound("Unknown parent event");

        var from = request.From is null
            ? request.Backwards ? long.MaxValue : 0
            : await ToTopologicalAsync(request.RoomId, request.From, request.Backwards, "from");
        long? to = request.To is null ? null : await ToTopologicalAsync(request.RoomId, request.To, request.Backwards, "to");
        var limit = Math.Clamp(request.Limit, 1, MaxLimit);
        var page = await relations.GetChildrenAsync(request.RoomId, request.EventId, request.RelType, request.EventType, request.Recurse,
            from, to, request.Backwards, limit);
        var visible = new List<StoredEvent>();
        foreach (var e in await erased.ForViewerAsync(requester.UserId, request.RoomId, page))
            if (await visibility.CanSeeAsync(requester.UserId, e)) visible.Add(e);

        var response = new JsonObject { ["chunk"] = await relations.ToClientArrayAsync(visible, requester.UserId, requester.DeviceId) };
        if (page.Count == limit) response["next_batch"] = PaginationToken.Topological(page[^1].Topological);
        if (request.From is not null) response["prev_batch"] = request.From;
        if (request.Recurse) response["recursion_depth"] = RoomRelations.MaxRecursionDepth;
        return response;
    }

    /// <summary>
    /// The room's threads, the one with the latest reply first (spec "GET /threads"): every thread, or with
    /// <c>include=participated</c> those the user started or replied in; only roots the user may see.
    /// </summary>
    public async Task<JsonObject> GetThreadsAsync(Accounts.Requester requester, ThreadsRequest request, CancellationToken ct)
    {
        await barrier.WaitAsync([StreamNames.Events], TimeSpan.FromSeconds(5), ct);
        await visibility.RequireReadableAsync(request.RoomId, requester.UserId);
        var before = request.From is null
            ? long.MaxValue
            : PaginationToken.TryParseTopological(request.From, out var t) ? t : throw MatrixException.InvalidParam("Malformed 'from' token");
        var page = await relations.GetThreadsAsync(request.RoomId, request.OnlyParticipated ? requester.UserId : null, before,
            Math.Clamp(request.Limit, 1, MaxLimit));
        var visible = new List<StoredEvent>();
        foreach (var root in await erased.ForViewerAsync(requester.UserId, request.RoomId, page.Roots))
            if (await visibility.CanSeeAsync(requester.UserId, root)) visible.Add(root);
        var response = new JsonObject { ["chunk"] = await relations.ToClientArrayAsync(visible, requester.UserId, requester.DeviceId) };
        if (page.NextBefore is { } next) response["next_batch"] = PaginationToken.Topological(next);
        return response;
    }

    // A RoomEventFilter as the room part of a sync filter: its event criteria for the timeline, its lazy-loading flags
    // where a sync filter keeps them (under state).
    private static string WrapRoomFilter(string filter) =>
        filter.TrimStart().StartsWith('{')
            ? $"{{\"room\":{{\"timeline\":{filter},\"state\":{filter}}}}}"
            : throw MatrixException.InvalidParam("'filter' must be a JSON RoomEventFilter");

    /// <summary>A pagination token (<c>t{n}</c>) or a sync token (through the room's position in it) as an exclusive
    /// topological bound in the direction of travel.</summary>
    private async Task<long> ToTopologicalAsync(string roomId, string token, bool backwards, string name)
    {
        if (PaginationToken.TryParseTopological(token, out var t)) return t;
        if (!StreamToken.TryParse(token, out var stream)) throw MatrixException.InvalidParam($"Malformed '{name}' token");
        var position = store.PositionIn(stream, roomId);
        var (events, _) = await store.GetEventsByStreamAsync(roomId, 0, position, 1);
        var last = events.Count == 0 ? 0 : events[^1].Topological;
        // Backwards from a sync token: everything at or before it; forwards: everything after it.
        return backwards ? last + 1 : last;
    }
}

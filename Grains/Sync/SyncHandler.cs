using System.Text.Json;
using System.Text.Json.Nodes;
using Homeserver.Accounts;
using Homeserver.Errors;
using Homeserver.Matrix;
using Homeserver.Observability;
using Homeserver.Rooms;
using Homeserver.Streams;

namespace Homeserver.Sync;

/// <summary>A /sync request as the endpoint parsed it.</summary>
public sealed record SyncRequest(string? Since, TimeSpan Timeout, string? Filter, bool FullState, string? SetPresence);

/// <summary>
/// Computes /sync for one device on this silo. A response covers (since, to] where <c>to</c> is what this silo's
/// reader has applied (so every cache it reads is already invalidated for it); when nothing changed it parks on the
/// silo's waiters for the user's rooms and keys, and recomputes once woken. Room data comes from
/// <see cref="RoomEventStore"/>; every other stream adds itself through an <see cref="ISyncSection"/>.
/// </summary>
public sealed class SyncHandler(
    RoomEventStore store,
    RoomRelations relations,
    RecentRoomEvents recent,
    RoomVisibility visibility,
    StreamNotifier notifier,
    ReplicationBarrier barrier,
    FilterStore filters,
    LazyLoadedMembers lazyMembers,
    AccountData.IgnoredUsers ignoredUsers,
    RoomPeekStore peeks,
    ErasedSenders erased,
    RoomSyncStates roomStates,
    HomeserverMetrics metrics,
    IEnumerable<ISyncSection> sections)
{
    private static readonly TimeSpan BarrierTimeout = TimeSpan.FromSeconds(5);
    private static readonly string[] StrippedStateTypes =
        ["m.room.create", "m.room.join_rules", "m.room.name", "m.room.avatar", "m.room.canonical_alias", "m.room.encryption", "m.room.topic"];
    private readonly IReadOnlyList<ISyncSection> _sections = sections.ToList();

    /// <param name="ct">The request was abandoned: stop all work.</param>
    /// <param name="stopWaiting">Answer now with what there is (the server is stopping): a long-poll stops waiting, but
    /// what it computes is still computed, so the answer is as correct as any other.</param>
    public async Task<JsonObject> SyncAsync(Requester requester, SyncRequest request, CancellationToken ct, CancellationToken stopWaiting = default)
    {
        using var waitEnds = CancellationTokenSource.CreateLinkedTokenSource(ct, stopWaiting);
        var filter = await ResolveFilterAsync(requester.UserId, request.Filter);
        var since = request.Since is null ? null : StreamToken.Parse(request.Since);
        var deadline = DateTime.UtcNow + request.Timeout;

        var started = Task.WhenAll(_sections.Select(s => s.RequestStartedAsync(requester, request)));
        // A sync from scratch shows what its own start wrote (the user's presence, set online by syncing), so that
        // comes before the barrier; an incremental one overlaps the two.
        if (since is null) await started;
        // Read-your-writes: whatever any writer acknowledged before this request is applied here before we read.
        await barrier.WaitAsync(StreamNames.All, BarrierTimeout, ct);
        await started;
        if (since is not null && !notifier.Current.Covers(since))
            await notifier.WaitForTokenAsync(since, BarrierTimeout, ct);

        // A long-poll that picks up where the previous response ended usually has nothing to say yet: when this silo
        // can tell that no row for the user's keys was applied since the token, it parks before building anything,
        // so the re-polls that follow a wake-up do not compete with the responses still being built for it.
        var parkFirst = since is not null && request.Timeout > TimeSpan.Zero && !request.FullState && request.SetPresence is null
                        && notifier.TracksAll(since);
        // When a parked long-poll was woken (a Stopwatch timestamp; 0 while not), for the wake-up latency metric.
        long wokenAt = 0;
        while (true)
        {
            var to = notifier.Current;
            if (since is not null) to = to.Merge(since); // never answer with a token behind the one we were given
            var (context, memberships) = await BuildContextAsync(requester, since, to, filter, request);
            if (parkFirst)
            {
                parkFirst = false;
                var (wake, families) = WakeKeys(context);
                // A family that gathers its wake-ups (presence) is left to the wait, which holds it back.
                if (!notifier.ChangedSince(since!, wake, families: families.Where(f => f.WakeDelay <= TimeSpan.Zero).ToList()))
                {
                    var waitFor = deadline - DateTime.UtcNow;
                    if (waitFor > TimeSpan.Zero && await notifier.WaitForChangeAsync(since!, wake, waitFor, waitEnds.Token, families))
                        wokenAt = metrics.SyncWoken();
                    continue; // build for whatever woke us (or the empty answer of a timeout)
                }
            }
            var response = await BuildResponseAsync(context, memberships);
            var remaining = deadline - DateTime.UtcNow;
            if (context.HasChanges || since is null || request.FullState || remaining <= TimeSpan.Zero || waitEnds.IsCancellationRequested)
            {
                if (wokenAt != 0 && context.HasChanges) metrics.SyncAnswered(wokenAt);
                return response;
            }

            wokenAt = 0;
            var (keys, keyFamilies) = WakeKeys(context);
            if (!await notifier.WaitForChangeAsync(to, keys, remaining, waitEnds.Token, keyFamilies))
                return response;
            wokenAt = metrics.SyncWoken();
        }
    }

    /// <summary>The keys whose rows wake this user's long-poll: the user, their joined and peeked rooms, and what
    /// sections name (keys, and families of keys such as every member's presence).</summary>
    private (HashSet<string> Keys, List<KeyFamily> Families) WakeKeys(SyncContext context)
    {
        var keys = new HashSet<string>(StringComparer.Ordinal) { context.Requester.UserId };
        keys.UnionWith(context.JoinedRooms);
        keys.UnionWith(context.PeekedRooms.Select(p => p.RoomId));
        var families = new List<KeyFamily>();
        foreach (var section in _sections)
        {
            keys.UnionWith(section.WakeKeys(context));
            families.AddRange(section.WakeKeyFamilies(context));
        }
        return (keys, families);
    }

    public async Task<SyncFilter> ResolveFilterAsync(string userId, string? filter)
    {
        if (string.IsNullOrEmpty(filter)) return SyncFilter.Default;
        string json;
        if (filter.TrimStart().StartsWith('{')) json = filter;
        else json = await filters.GetAsync(userId, filter)
                    ?? throw new MatrixException(ErrorCodes.NotFound, "No such filter", 404);
        // An inline filter is client JSON from a query parameter: the same parser as a request body.
        return SyncFilter.Parse(ClientJson.Parse(json) as JsonObject ?? throw MatrixException.BadJson("Filter must be a JSON object"));
    }

    private async Task<(SyncContext, Dictionary<string, MembershipAt>)> BuildContextAsync(Requester requester, StreamToken? since, StreamToken to, SyncFilter filter, SyncRequest request)
    {
        var memberships = await MembershipsAtAsync(requester.UserId, to);
        var context = new SyncContext
        {
            Requester = requester,
            Since = since,
            To = to,
            Filter = filter,
            FullState = request.FullState,
            SetPresence = request.SetPresence,
            JoinedRooms = memberships.Where(m => m.Value.Membership == "join").Select(m => m.Key).ToList(),
            PeekedRooms = await peeks.GetAsync(requester.UserId, requester.DeviceId, to),
        };
        return (context, memberships);
    }

    private readonly record struct MembershipAt(string Membership, long StreamPosition, long Topological, bool Forgotten, string Sender);

    /// <summary>The user's membership of every room as of <paramref name="to"/>: the current one where it is not
    /// newer than <paramref name="to"/>, otherwise the last change at or before it.</summary>
    private async Task<Dictionary<string, MembershipAt>> MembershipsAtAsync(string userId, StreamToken to)
    {
        var result = new Dictionary<string, MembershipAt>(StringComparer.Ordinal);
        var newer = false;
        foreach (var m in await store.GetMembershipsForUserAsync(userId))
        {
            if (m.StreamPosition <= to.Get(StreamNames.Events, m.StreamWriter))
                result[m.RoomId] = new MembershipAt(m.Membership, m.StreamPosition, m.Topological, m.Forgotten, m.Sender);
            else newer = true;
        }
        if (newer)
        {
            foreach (var change in await store.GetMembershipChangesAsync(userId, StreamToken.Zero, to))
                if (!result.TryGetValue(change.RoomId, out var known) || known.StreamPosition <= change.StreamPosition)
                    result[change.RoomId] = new MembershipAt(change.Membership, change.StreamPosition, change.Topological, false, change.Sender);
        }
        return result;
    }

    private async Task<JsonObject> BuildResponseAsync(SyncContext context, Dictionary<string, MembershipAt> memberships)
    {
        var join = new JsonObject();
        var invite = new JsonObject();
        var leave = new JsonObject();
        var userId = context.Requester.UserId;
        // Every membership change of a user is followed by a row keyed by that user: no such row, no query.
        var membershipUnchanged = context.Since is null || !context.StreamMoved(StreamNames.Events)
            || (notifier.Tracks(StreamNames.Events, context.Since) && !notifier.ChangedSince(context.Since, [userId], StreamNames.Events));
        var changes = context.Since is null || membershipUnchanged
            ? []
            : (await store.GetMembershipChangesAsync(context.Requester.UserId, context.Since, context.To))
                .GroupBy(c => c.RoomId).ToDictionary(g => g.Key, g => g.ToList(), StringComparer.Ordinal);

        var ignored = await ignoredUsers.GetAsync(userId);
        // Rooms a filter leaves out are not read, so their membership changes cannot be seen: assume some.
        if (context.Filter.Rooms is not null || context.Filter.NotRooms.Count > 0)
        {
            context.MembershipChanged = context.StreamMoved(StreamNames.Events);
            context.KnownMembershipChanges = null;
        }
        var prefetched = context.Since is null || context.FullState
            ? await PrefetchFullRoomsAsync(context, memberships.Where(m => m.Value.Membership == "join").Select(m => m.Key))
            : null;
        foreach (var (roomId, membership) in memberships)
        {
            if (!context.Filter.IncludesRoom(roomId)) continue;
            changes.TryGetValue(roomId, out var roomChanges);
            if (roomChanges is not null) (context.MembershipChanged, context.KnownMembershipChanges) = (true, null);
            switch (membership.Membership)
            {
                case "join":
                    var joined = await JoinedRoomAsync(context, roomId, roomChanges, ignored, prefetched?.GetValueOrDefault(roomId));
                    if (joined is not null)
                    {
                        join[roomId] = joined;
                        context.JoinedRoomResponses[roomId] = joined;
                    }
                    break;
                case "invite" when (context.Since is null || roomChanges is not null) && !ignored.Contains(membership.Sender):
                    invite[roomId] = new JsonObject { ["invite_state"] = new JsonObject { ["events"] = await StrippedStateAsync(roomId, context.Requester.UserId, membership.Topological) } };
                    context.HasChanges = true;
                    break;
                case "leave" or "ban" when !membership.Forgotten && (roomChanges is not null || (context.Since is null && context.Filter.IncludeLeave)):
                    leave[roomId] = await LeftRoomAsync(context, roomId, membership, roomChanges);
                    context.HasChanges = true;
                    break;
            }
        }

        var peek = new JsonObject();
        foreach (var peeked in context.PeekedRooms)
        {
            if (memberships.GetValueOrDefault(peeked.RoomId).Membership == "join" || !context.Filter.IncludesRoom(peeked.RoomId)) continue;
            if (await PeekedRoomAsync(context, peeked, ignored) is { } room) peek[peeked.RoomId] = room;
        }

        context.JoinedRoom = roomId =>
        {
            if (context.JoinedRoomResponses.TryGetValue(roomId, out var existing)) return existing;
            var created = EmptyJoinedRoom();
            context.JoinedRoomResponses[roomId] = created;
            join[roomId] = created;
            return created;
        };

        var response = new JsonObject
        {
            ["next_batch"] = context.To.Serialize(),
            ["rooms"] = new JsonObject { ["join"] = join, ["invite"] = invite, ["leave"] = leave, ["knock"] = new JsonObject() },
            ["account_data"] = new JsonObject { ["events"] = new JsonArray() },
            ["presence"] = new JsonObject { ["events"] = new JsonArray() },
            ["to_device"] = new JsonObject { ["events"] = new JsonArray() },
            ["device_lists"] = new JsonObject { ["changed"] = new JsonArray(), ["left"] = new JsonArray() },
            ["device_one_time_keys_count"] = new JsonObject(),
            ["device_unused_fallback_key_types"] = new JsonArray(),
        };
        if (peek.Count > 0) response["rooms"]!["peek"] = peek;
        foreach (var section in _sections) await section.ContributeAsync(context, response);
        return response;
    }

    private static JsonObject EmptyJoinedRoom() => new()
    {
        ["timeline"] = new JsonObject { ["events"] = new JsonArray(), ["limited"] = false },
        ["state"] = new JsonObject { ["events"] = new JsonArray() },
        ["account_data"] = new JsonObject { ["events"] = new JsonArray() },
        ["ephemeral"] = new JsonObject { ["events"] = new JsonArray() },
        ["unread_notifications"] = new JsonObject { ["notification_count"] = 0, ["highlight_count"] = 0 },
        ["summary"] = new JsonObject(),
    };

    private async Task<JsonObject?> JoinedRoomAsync(SyncContext context, string roomId, List<MembershipChange>? changes, IReadOnlySet<string> ignored,
        FullRoomRead? prefetched) =>
        await RoomAsync(context, roomId, context.Since is null || await JoinedInWindowAsync(context.Requester.UserId, roomId, changes), ignored, prefetched);

    /// <summary>What a room sent in full needs from the database, read for every such room at once: its latest events
    /// and the state where they start (<see cref="RoomEventStore.GetStatesAtTopologicalAsync"/>).</summary>
    private sealed record FullRoomRead(IReadOnlyList<StoredEvent> Events, bool Limited, IReadOnlyList<StoredEvent>? StateBefore, RoomSyncState State);

    /// <summary>
    /// A sync from scratch (or with full state) sends every joined room in full: their windows, current states, the
    /// state where each window starts, the windows' bundled aggregations and whether their senders are erased are read
    /// in five round trips for all
    /// rooms, not several a room, so the cost of an
    /// account in hundreds of rooms is a few round trips and the rows it sends. A filtered timeline pages by itself.
    /// </summary>
    private async Task<Dictionary<string, FullRoomRead>?> PrefetchFullRoomsAsync(SyncContext context, IEnumerable<string> joinedRooms)
    {
        if (context.Filter.Timeline.Restricts) return null;
        var rooms = joinedRooms.Where(context.Filter.IncludesRoom).Select(r => (RoomId: r, From: 0L, To: store.PositionIn(context.To, r))).ToList();
        if (rooms.Count == 0) return null;
        var windows = await store.GetLatestEventsAsync(rooms, context.Filter.TimelineLimit);
        // A client that lazy-loads members is sent the window's senders' and its own: the others' are not read.
        var userId = context.Requester.UserId;
        var current = await roomStates.GetAsync(rooms.Select(r => (r.RoomId, MembersShown(userId, windows[r.RoomId].Events))).ToList(),
            allMembers: !context.Filter.LazyLoadMembers);
        foreach (var (roomId, state) in current) context.RoomStates[roomId] = state;
        var starts = windows.Where(w => w.Value.Events.Count > 0).Select(w => (w.Key, w.Value.Events[0].Topological - 1)).ToList();
        var states = await store.GetStatesAtTopologicalAsync(starts, current.ToDictionary(c => c.Key, c => c.Value.Known, StringComparer.Ordinal));
        await relations.PrefetchAsync(windows.Values.SelectMany(w => w.Events).Where(e => !e.Redacted && e.StateKey is null).Select(e => e.EventId));
        await erased.PrefetchAsync(windows.Values.SelectMany(w => w.Events).Select(e => e.Sender));
        return windows.ToDictionary(w => w.Key, w => new FullRoomRead(w.Value.Events, w.Value.Limited, states.GetValueOrDefault(w.Key), current[w.Key]),
            StringComparer.Ordinal);
    }

    /// <summary>The users whose member events a lazy-loading response for this window may hold or check: the user's
    /// own, the senders', and those whose membership the window changes (visibility compares them with the current
    /// state). A timeline that visibility or ignored users cut differently reads its state afresh.</summary>
    private static IReadOnlyCollection<string> MembersShown(string userId, IReadOnlyList<StoredEvent> window)
    {
        var members = new HashSet<string>(StringComparer.Ordinal) { userId };
        foreach (var e in window)
        {
            members.Add(e.Sender);
            if (e.Type == "m.room.member" && e.StateKey is not null) members.Add(e.StateKey);
        }
        return members;
    }

    /// <summary>A peeked room reads as a joined one (MSC2753): in full in the first sync after the peek started, then
    /// only when it has new events; nothing while its history is not world readable.</summary>
    private async Task<JsonObject?> PeekedRoomAsync(SyncContext context, RoomPeek peek, IReadOnlySet<string> ignored) =>
        (await store.GetCurrentStateAsync(peek.RoomId)).IsWorldReadable
            ? await RoomAsync(context, peek.RoomId, peek.StartedIn(context), ignored)
            : null;

    /// <summary>A room's object under <c>rooms.join</c> (or <c>rooms.peek</c>), null when there is nothing new;
    /// <paramref name="newlyJoined"/>: the client has not seen the room yet, so it gets the whole window and its state.</summary>
    private async Task<JsonObject?> RoomAsync(SyncContext context, string roomId, bool newlyJoined, IReadOnlySet<string> ignored,
        FullRoomRead? prefetched = null)
    {
        var toPosition = store.PositionIn(context.To, roomId);
        var full = newlyJoined || context.FullState;
        var fromPosition = full ? 0 : store.PositionIn(context.Since!, roomId);
        // Most wake-ups concern one room: skip the others without a query when their writer did not move, or when
        // this silo saw every row since the token and none was the room's.
        if (!full && (fromPosition >= toPosition
                      || (notifier.Tracks(StreamNames.Events, context.Since!) && !notifier.ChangedSince(context.Since!, [roomId], StreamNames.Events))))
            return null;
        var limit = context.Filter.TimelineLimit;

        // An incremental window is usually a few events this silo just applied: read them from memory.
        var (events, limited) = prefetched is not null && full
            ? (prefetched.Events, prefetched.Limited)
            : context.Filter.Timeline.Restricts
            ? await FilteredWindowAsync(roomId, fromPosition, toPosition, limit, context.Filter.Timeline)
            : !full && notifier.Tracks(StreamNames.Events, context.Since!)
              && recent.TryGet(roomId, fromPosition, toPosition, limit, out var recentEvents, out var recentLimited)
                ? (recentEvents, recentLimited)
                : await store.GetEventsByStreamAsync(roomId, fromPosition, toPosition, limit);
        // A filtered timeline may hide membership changes: assume there were some.
        if (full || limited || context.Filter.Timeline.Restricts) (context.MembershipChanged, context.KnownMembershipChanges) = (true, null);
        else if (events.Any(e => e.Type == "m.room.member"))
        {
            context.MembershipChanged = true;
            foreach (var e in events)
                if (e is { Type: "m.room.member", StateKey: { } member })
                    context.KnownMembershipChanges?.Add((roomId, member, RoomEventFormat.ContentString(e.Utf8Json, "membership") ?? ""));
        }
        if (!full && events.Count == 0) return null;
        var timeline = prefetched is not null && full
            ? await visibility.VisibleToMemberAsync(context.Requester.UserId, roomId, events, prefetched.State.Known)
            : await visibility.VisibleToMemberAsync(context.Requester.UserId, roomId, events);
        if (limited && timeline.Count < Math.Min(limit, events.Count) && !context.Filter.Timeline.Restricts)
            (timeline, limited) = await FillVisibleAsync(context.Requester.UserId, roomId, fromPosition, timeline, events[0].StreamPosition, limit);
        // A room joined since the last sync has history before the join the client never saw: its timeline counts as
        // limited (as Synapse marks it), so the client knows there is more behind prev_batch.
        if (newlyJoined && context.Since is not null) limited = true;
        timeline = await erased.ForViewerAsync(context.Requester.UserId, roomId, timeline);
        // What ignored users say is not shown (their state changes are: the room must stay consistent).
        if (ignored.Count > 0)
        {
            timeline = timeline.Where(e => e.StateKey is not null || !ignored.Contains(e.Sender)).ToList();
            if (!full && !limited && timeline.Count == 0) return null;
        }

        IReadOnlyList<StoredEvent> state = [];
        if (full || limited)
        {
            // The prefetched state is where the window read starts; visibility or ignored senders may start it later.
            state = timeline.Count > 0
                ? prefetched is { StateBefore: { } before } && full && prefetched.Events.Count > 0 && timeline[0].EventId == prefetched.Events[0].EventId
                    ? before
                    : await store.GetStateAtTopologicalAsync(roomId, timeline[0].Topological - 1)
                : await store.GetStateAtStreamAsync(roomId, toPosition);
            // After a gap the client holds the state as of its token: only what changed in the gap is news.
            if (!full && !context.Filter.LazyLoadMembers) state = state.Where(e => e.StreamPosition > fromPosition).ToList();
        }

        var room = EmptyJoinedRoom();
        var timelineJson = (JsonObject)room["timeline"]!;
        var eventsJson = (JsonArray)timelineJson["events"]!;
        foreach (var rendered in await RenderTimelineAsync(context, timeline)) eventsJson.Add(rendered);
        timelineJson["limited"] = limited;
        timelineJson["prev_batch"] = PaginationToken.Topological(timeline.Count > 0 ? timeline[0].Topological : await store.GetMaxTopologicalAsync(roomId) + 1);
        if (context.Filter.LazyLoadMembers)
            state = await LazyStateAsync(context, roomId, state, timeline, full, limited, fromPosition);
        ((JsonObject)room["state"]!)["events"] = RenderState(context, state);
        if (full || timeline.Any(e => e.Type == "m.room.member"))
            room["summary"] = Summary(prefetched is not null && full ? prefetched.State : RoomSyncState.Of(await store.GetCurrentStateAsync(roomId)),
                context.Requester.UserId);
        context.HasChanges = true;
        return room;
    }

    /// <summary>
    /// The state of a room for a client that lazy-loads members: every other state event as usual, and of the member
    /// events only those the timeline needs (its senders', the user's own in a sync from scratch) that this device does
    /// not hold yet, plus, after a gap, every membership that changed in it. Member events the timeline itself carries
    /// are not repeated. What is sent is remembered per device (<see cref="LazyLoadedMembers"/>).
    /// </summary>
    private async Task<IReadOnlyList<StoredEvent>> LazyStateAsync(SyncContext context, string roomId, IReadOnlyList<StoredEvent> state,
        IReadOnlyList<StoredEvent> timeline, bool full, bool limited, long fromPosition)
    {
        var (userId, deviceId) = (context.Requester.UserId, context.Requester.DeviceId);
        if (full) lazyMembers.Reset(userId, deviceId, roomId);
        var inTimeline = timeline.Where(e => e.Type == "m.room.member" && e.StateKey is not null).Select(e => e.StateKey!).ToHashSet(StringComparer.Ordinal);
        var needed = timeline.Select(e => e.Sender).ToHashSet(StringComparer.Ordinal);
        if (full) needed.Add(userId);
        needed.ExceptWith(inTimeline);
        if (!context.Filter.IncludeRedundantMembers)
            needed.RemoveWhere(m => lazyMembers.WasSent(userId, deviceId, roomId, m));

        // Without a gap there is no state block; the needed members come from the state where the timeline starts.
        // They are looked up one by one in the room's shared snapshot (a member event newer than that point is read
        // from the database as it stood there): a woken long-poll in a room of 10,000 does not read the whole state
        // for the one sender it has not shown yet.
        if (!full && !limited && needed.Count > 0)
            state = await MembersBeforeAsync(roomId, needed, timeline[0].Topological - 1);
        var result = new List<StoredEvent>();
        foreach (var e in state)
        {
            if (e.Type != "m.room.member")
            {
                if (full || (limited && e.StreamPosition > fromPosition)) result.Add(e);
                continue;
            }
            var member = e.StateKey!;
            if (inTimeline.Contains(member)) continue;
            if (needed.Contains(member) || (limited && !full && e.StreamPosition > fromPosition)) result.Add(e);
        }
        lazyMembers.Record(userId, deviceId, roomId, result.Where(e => e.Type == "m.room.member").Select(e => e.StateKey!).Concat(inTimeline));
        return result;
    }

    /// <summary>The member events of <paramref name="members"/> in the state after the event at <paramref name="topological"/>.</summary>
    private async Task<IReadOnlyList<StoredEvent>> MembersBeforeAsync(string roomId, IEnumerable<string> members, long topological)
    {
        var current = await store.GetCurrentStateAsync(roomId);
        var result = new List<StoredEvent>();
        foreach (var member in members)
        {
            var e = current.Get("m.room.member", member);
            if (e is null || e.Topological > topological) e = await store.GetStateEventAtAsync(roomId, "m.room.member", member, topological);
            if (e is not null) result.Add(e);
        }
        return result;
    }

    /// <summary>
    /// The latest <paramref name="limit"/> events of the window that the timeline filter keeps, read backwards a page
    /// at a time (a filter for messages must not come back with one message among a hundred other events);
    /// <c>Limited</c> when more matching ones were left out. Bounded: past <see cref="MaxFilteredPages"/> pages the
    /// window counts as limited.
    /// </summary>
    private async Task<(IReadOnlyList<StoredEvent> Events, bool Limited)> FilteredWindowAsync(string roomId, long fromPosition,
        long toPosition, int limit, EventFilter filter)
    {
        var matching = new List<StoredEvent>();
        var upper = toPosition;
        for (var page = 0; page < MaxFilteredPages; page++)
        {
            var (events, more) = await store.GetEventsByStreamAsync(roomId, fromPosition, upper, FilteredPageSize);
            matching.InsertRange(0, events.Where(filter.Matches));
            if (matching.Count > limit) return (matching.Skip(matching.Count - limit).ToList(), true);
            if (!more || events.Count == 0) return (matching, false);
            upper = events[0].StreamPosition - 1;
        }
        return (matching, true);
    }

    private const int FilteredPageSize = 100;
    private const int MaxFilteredPages = 10;

    /// <summary>A join in the window that was not a join before it (a display name change is join → join).</summary>
    private async Task<bool> JoinedInWindowAsync(string userId, string roomId, List<MembershipChange>? changes)
    {
        if (changes is null) return false;
        var firstJoin = changes.FirstOrDefault(c => c.Membership == "join");
        if (firstJoin is null) return false;
        return await store.GetMembershipAtAsync(roomId, userId, firstJoin.Topological - 1) != "join";
    }

    /// <summary>The timeline events the filter keeps, rendered, with their bundled aggregations (threads, edits,
    /// references).</summary>
    private async Task<List<JsonObject>> RenderTimelineAsync(SyncContext context, IReadOnlyList<StoredEvent> timeline)
    {
        var served = new List<(StoredEvent, JsonObject)>();
        foreach (var e in timeline)
            if (context.Filter.Timeline.Matches(e)) served.Add((e, Render(context, e, forRequester: true)));
        await relations.BundleAsync(context.Requester.UserId, served, e => Render(context, e, forRequester: true));
        return served.Select(s => s.Item2).ToList();
    }

    /// <summary>A room event as the filter asks for it; <paramref name="forRequester"/> adds the requester's transaction id
    /// to their own timeline events.</summary>
    private static JsonObject Render(SyncContext context, StoredEvent e, bool forRequester)
    {
        var (userId, deviceId) = forRequester ? (context.Requester.UserId, context.Requester.DeviceId) : (null, null);
        return context.Filter.FederationFormat
            ? RoomEventFormat.ToFederation(e, userId, deviceId)
            : RoomEventFormat.ToClient(e, userId, deviceId, includeRoomId: false);
    }

    /// <summary>The state events the filter lets through, as it asks for them; the client format is written from the
    /// stored bytes when the response is written (<see cref="RoomEventFormat.ToClientJsonArray"/>), not built as a
    /// tree: a full-state sync holds every member event of every room.</summary>
    private static JsonNode RenderState(SyncContext context, IReadOnlyList<StoredEvent> state)
    {
        var shown = state.Where(context.Filter.State.Matches).ToList();
        return context.Filter.FederationFormat
            ? new JsonArray(shown.Select(e => (JsonNode)RoomEventFormat.ToFederation(e)).ToArray())
            : RoomEventFormat.ToClientJsonArray(shown, includeRoomId: false);
    }

    private const int MaxVisibilityPages = 5;

    /// <summary>
    /// History hidden from the user must not crowd what they can see out of the window: pages further back (at most
    /// <see cref="MaxVisibilityPages"/> of three windows each, as Synapse bounds it) until the window is full of visible
    /// events or the gap is read. Returns the window and whether older events were left out.
    /// </summary>
    private async Task<(IReadOnlyList<StoredEvent> Events, bool Limited)> FillVisibleAsync(string userId, string roomId, long fromPosition,
        IReadOnlyList<StoredEvent> visible, long oldestRead, int limit)
    {
        var collected = new List<StoredEvent>(visible);
        for (var page = 0; page < MaxVisibilityPages && collected.Count < limit; page++)
        {
            var (older, more) = await store.GetEventsByStreamAsync(roomId, fromPosition, oldestRead - 1, limit * 3);
            if (older.Count == 0) return (collected, false);
            oldestRead = older[0].StreamPosition;
            collected.InsertRange(0, await visibility.VisibleToMemberAsync(userId, roomId, older));
            if (!more && collected.Count <= limit) return (collected, false);
        }
        return collected.Count > limit ? (collected.GetRange(collected.Count - limit, limit), true) : (collected, true);
    }

    private static JsonObject Summary(RoomSyncState state, string userId)
    {
        // The counts come with the state (from the room's shared snapshot, or counted for a sync from scratch): a summary
        // costs the same in a room of 10,000.
        var summary = new JsonObject
        {
            ["m.joined_member_count"] = state.JoinedMembers,
            ["m.invited_member_count"] = state.InvitedMembers,
        };
        if (!RoomSyncStates.IsNamed(state.Known))
        {
            var heroes = new JsonArray();
            foreach (var hero in state.FirstMembers.Where(u => u != userId).Distinct().Order(StringComparer.Ordinal).Take(5))
                heroes.Add(hero);
            summary["m.heroes"] = heroes;
        }
        return summary;
    }

    /// <summary>The invite's stripped state: the room's identifying state and the invitee's own member event, not
    /// the whole member list.</summary>
    private async Task<JsonArray> StrippedStateAsync(string roomId, string invitee, long inviteTopological)
    {
        var array = new JsonArray();
        var state = await store.GetStateAtTopologicalAsync(roomId, inviteTopological);
        foreach (var e in state)
        {
            if (!StrippedStateTypes.Contains(e.Type) && e.Type != "m.room.member") continue;
            if (e.Type == "m.room.member" && e.StateKey != invitee) continue;
            array.Add(new JsonObject
            {
                ["type"] = e.Type,
                ["state_key"] = e.StateKey,
                ["sender"] = e.Sender,
                ["content"] = JsonNode.Parse(RoomEventFormat.ContentJson(e.Json)),
            });
        }
        return array;
    }

    /// <summary>
    /// A room the user left (or was banned from): its timeline up to the leave, through the timeline filter, and the
    /// state where that timeline starts, through the state filter: all of it when the room is new to this client (a
    /// sync from scratch, full_state, or joined and left within the window), else what changed since the token.
    /// </summary>
    private async Task<JsonObject> LeftRoomAsync(SyncContext context, string roomId, MembershipAt membership, List<MembershipChange>? changes)
    {
        var userId = context.Requester.UserId;
        var full = context.Since is null || context.FullState || await JoinedInWindowAsync(userId, roomId, changes);
        var fromPosition = full ? 0 : store.PositionIn(context.Since!, roomId);
        var limit = context.Filter.TimelineLimit;
        var (events, limited) = context.Filter.Timeline.Restricts
            ? await FilteredWindowAsync(roomId, fromPosition, membership.StreamPosition, limit, context.Filter.Timeline)
            : await store.GetEventsByStreamAsync(roomId, fromPosition, membership.StreamPosition, limit);
        var visible = await erased.ForViewerAsync(userId, roomId, await visibility.VisibleToMemberAsync(userId, roomId, events));
        var state = await store.GetStateAtTopologicalAsync(roomId, visible.Count > 0 ? visible[0].Topological - 1 : membership.Topological);
        if (!full) state = state.Where(e => e.StreamPosition > fromPosition).ToList();

        var timeline = new JsonArray();
        foreach (var rendered in await RenderTimelineAsync(context, visible)) timeline.Add(rendered);
        var stateJson = RenderState(context, state);
        return new JsonObject
        {
            ["timeline"] = new JsonObject
            {
                ["events"] = timeline,
                ["limited"] = limited,
                ["prev_batch"] = PaginationToken.Topological(visible.Count > 0 ? visible[0].Topological : membership.Topological),
            },
            ["state"] = new JsonObject { ["events"] = stateJson },
            ["account_data"] = new JsonObject { ["events"] = new JsonArray() },
        };
    }
}

/// <summary>
/// Pagination tokens for /messages and /context: <c>t{n}</c>, a topological position in one room (histories are
/// linear). /messages also accepts a sync token, converted through the room's events writer.
/// </summary>
public static class PaginationToken
{
    public static string Topological(long topological) => $"t{topological}";

    public static bool TryParseTopological(string token, out long topological)
    {
        topological = 0;
        return token.Length > 1 && token[0] == 't'
               && long.TryParse(token.AsSpan(1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out topological);
    }
}

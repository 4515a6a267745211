using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Homeserver.AccountData;
using Homeserver.Caches;
using Homeserver.PushRules;
using Homeserver.Rooms;
using Homeserver.Streams;

namespace Homeserver.Receipts;

/// <summary>
/// Unread counts per (room, user) on this silo: the events after the user's unread point
/// (<see cref="ReceiptStore.GetUnreadSinceAsync"/>) that the user's push rules say notify, and of those the ones that
/// highlight. Rules are evaluated when the counts are read, for the one user whose sync asks, so a send costs nothing
/// per member and a change of rules counts from the next sync on.
/// <para>Counts are kept as of an events position so that a sync woken by a new message evaluates only the new events
/// instead of the whole unread stretch again (which grows with every message the user has not read, for every member a
/// message wakes). The new events come from <see cref="RecentRoomEvents"/>; whenever they could move the unread point
/// (the user's own message or membership), or take back a counted event (a redaction), or memory does not hold them,
/// or the rules changed, the stretch is counted afresh from the database. A receipt of the user's in the room drops the
/// entry when the reader applies it; a count taken while an invalidation ran is not kept.</para>
/// </summary>
public sealed class UnreadCounts : IStreamRowHandler
{
    /// <summary>Its name among the caches (<c>Homeserver:Caches:Sizes</c>, metrics): (room, user) counts held; past the
    /// bound all are forgotten at once.</summary>
    public const string Cache = "receipts.unread_counts";

    private readonly ReceiptStore store;
    private readonly RoomEventStore rooms;
    private readonly PushRulesStore pushRules;
    private readonly RecentRoomEvents recent;
    private readonly StreamNotifier notifier;
    private readonly EventShards shards;
    private readonly int MaxEntries;

    public UnreadCounts(ReceiptStore store, RoomEventStore rooms, PushRulesStore pushRules, RecentRoomEvents recent,
        StreamNotifier notifier, EventShards shards, CacheRegistry caches)
    {
        (this.store, this.rooms, this.pushRules, this.recent, this.notifier, this.shards) = (store, rooms, pushRules, recent, notifier, shards);
        MaxEntries = caches.SizeOf(Cache, 200_000);
        caches.Track(Cache, () => new CacheStatus(Cache, _entries.Count, 0, 0, 0));
    }

    /// <summary>A fresh count reads at most this many of the latest unread events: past it a client shows "99+" anyway,
    /// and a room nobody read for months must not cost its whole history on every cold sync.</summary>
    public const int MaxCounted = 1_000;

    private sealed record Entry(long AsOf, string? DisplayName, CompiledPushRules Rules, long Notifications, long Highlights);

    private readonly ConcurrentDictionary<(string Room, string User), Entry> _entries = new();
    private long _invalidations;

    public string Stream => StreamNames.Receipts;

    public void Handle(StreamEntry entry)
    {
        if (entry.Kind != ReceiptPersister.KindName) return;
        var row = UserStreamSync.Read<ReceiptRow>(entry);
        Interlocked.Increment(ref _invalidations);
        _entries.TryRemove((row.RoomId, row.UserId), out _);
    }

    /// <summary>The user's (notifications, highlights) in the room, whose current state is <paramref name="state"/>,
    /// counting events up to <paramref name="toPosition"/> of the room (<see cref="EventShardMap.PositionIn"/>);
    /// <paramref name="fresh"/> forces a count from the database (the user's receipts moved).</summary>
    public async Task<(long Notifications, long Highlights)> GetAsync(string roomId, string userId, CurrentRoomState state,
        long toPosition, bool fresh)
    {
        var rules = await pushRules.GetCompiledAsync(userId);
        var displayName = state.DisplayName(userId);
        var room = PushRoomContext.Of(state);
        if (!fresh && TryKnown(roomId, userId, displayName, rules, room, toPosition) is { } known) return known;

        var generation = Interlocked.Read(ref _invalidations);
        var since = await store.GetUnreadSinceAsync(roomId, userId);
        var (unread, _) = since >= toPosition ? ([], false) : await rooms.GetEventsByStreamAsync(roomId, since, toPosition, MaxCounted);
        var counts = Count(unread, rules, room, displayName);
        Remember(roomId, userId, generation, toPosition, displayName, rules, counts);
        return counts;
    }

    /// <summary>As <see cref="GetAsync"/> for many rooms of one user (<paramref name="fresh"/>: the rooms to count from
    /// the database in any case): the rooms this silo has no count for are counted from two queries for all of them
    /// (a sync from scratch asks for every room the user is in).</summary>
    public async Task<Dictionary<string, (long Notifications, long Highlights)>> GetManyAsync(string userId,
        IReadOnlyList<(string RoomId, string? DisplayName, PushRoomContext Room, long ToPosition)> wanted, IReadOnlySet<string> fresh)
    {
        var rules = await pushRules.GetCompiledAsync(userId);
        var result = new Dictionary<string, (long, long)>(wanted.Count, StringComparer.Ordinal);
        var missing = new List<(string RoomId, string? DisplayName, PushRoomContext Room, long ToPosition)>();
        foreach (var (roomId, displayName, room, toPosition) in wanted)
        {
            if (!fresh.Contains(roomId) && TryKnown(roomId, userId, displayName, rules, room, toPosition) is { } known) result[roomId] = known;
            else missing.Add((roomId, displayName, room, toPosition));
        }
        if (missing.Count == 0) return result;
        var generation = Interlocked.Read(ref _invalidations);
        var since = await store.GetReadPointsManyAsync(missing.Select(m => m.RoomId).ToList(), userId);
        var stretches = missing.Select(m => (m.RoomId, From: since.GetValueOrDefault(m.RoomId), To: m.ToPosition)).Where(m => m.From < m.To).ToList();
        // Others' joins and leaves are most of a big room's unread stretch and notify nobody under the default rules.
        var unread = stretches.Count == 0 ? []
            : await rooms.GetLatestEventsAsync(stretches, MaxCounted, rules.OthersMembershipsNeverNotify ? userId : null);
        foreach (var m in missing)
        {
            var counts = unread.TryGetValue(m.RoomId, out var events) ? Count(AfterOwnLastMessage(events.Events, userId), rules, m.Room, m.DisplayName) : (0, 0);
            Remember(m.RoomId, userId, generation, m.ToPosition, m.DisplayName, rules, counts);
            result[m.RoomId] = counts;
        }
        return result;
    }

    /// <summary>The events after the user's own last message among them (the user read what came before it): the same
    /// events as reading from that message on, since a message is never left out of the stretch and the stretch keeps
    /// the latest <see cref="MaxCounted"/> events either way.</summary>
    private static IEnumerable<StoredEvent> AfterOwnLastMessage(IReadOnlyList<StoredEvent> events, string userId)
    {
        for (var i = events.Count - 1; i >= 0; i--)
            if (events[i].Sender == userId && events[i].StateKey is null)
                return events.Skip(i + 1);
        return events;
    }

    /// <summary>The count kept here brought up to <paramref name="toPosition"/> from memory, or null when it must be
    /// counted afresh.</summary>
    private (long Notifications, long Highlights)? TryKnown(string roomId, string userId, string? displayName, CompiledPushRules rules,
        PushRoomContext room, long toPosition)
    {
        var key = (roomId, userId);
        if (!_entries.TryGetValue(key, out var known) || known.DisplayName != displayName || !ReferenceEquals(known.Rules, rules)
            || known.AsOf > toPosition || Added(roomId, userId, displayName, rules, room, known.AsOf, toPosition) is not { } added)
            return null;
        var counted = known with { AsOf = toPosition, Notifications = known.Notifications + added.Notifications, Highlights = known.Highlights + added.Highlights };
        _entries.TryUpdate(key, counted, known);
        return (counted.Notifications, counted.Highlights);
    }

    private void Remember(string roomId, string userId, long generation, long toPosition, string? displayName, CompiledPushRules rules,
        (long Notifications, long Highlights) counts)
    {
        if (Interlocked.Read(ref _invalidations) != generation) return;
        if (_entries.Count >= MaxEntries) _entries.Clear();
        _entries[(roomId, userId)] = new Entry(toPosition, displayName, rules, counts.Notifications, counts.Highlights);
    }

    /// <summary>
    /// The counts split by thread, for a client that asked for <c>unread_thread_notifications</c>: the main timeline's
    /// (events in no thread, thread roots included) and each thread's with any, each counted from where the user read
    /// that thread (<see cref="ReceiptStore.GetThreadedUnreadPointsAsync"/>). Always counted from the database (only
    /// clients that ask pay for it).
    /// </summary>
    public async Task<((long Notifications, long Highlights) Main, Dictionary<string, (long Notifications, long Highlights)> Threads)>
        GetThreadedAsync(string roomId, string userId, CurrentRoomState state, long toPosition)
    {
        var rules = await pushRules.GetCompiledAsync(userId);
        var displayName = state.DisplayName(userId);
        var room = PushRoomContext.Of(state);
        var (basePoint, points) = await store.GetThreadedUnreadPointsAsync(roomId, userId);
        var (unread, _) = basePoint >= toPosition ? ([], false) : await rooms.GetEventsByStreamAsync(roomId, basePoint, toPosition, MaxCounted);
        (long, long) main = (0, 0);
        var threads = new Dictionary<string, (long Notifications, long Highlights)>(StringComparer.Ordinal);
        foreach (var e in unread)
        {
            var thread = e.StateKey is null && JsonNode.Parse(e.Json)?["content"] is JsonObject content
                         && EventRelation.Of(content) is { RelType: "m.thread" } relation
                ? relation.ParentId
                : "main";
            if (e.StreamPosition <= points.GetValueOrDefault(thread, basePoint)) continue;
            if (e.Redacted || rules.Evaluate(e, room, displayName) is not { Notify: true } actions) continue;
            var (n, h) = thread == "main" ? main : threads.GetValueOrDefault(thread);
            var counted = (n + 1, h + (actions.Highlight ? 1 : 0));
            if (thread == "main") main = counted;
            else threads[thread] = counted;
        }
        return (main, threads);
    }

    /// <summary>What the room's events in (from, to] add to the user's counts, or null when they could change more than
    /// that (or are not in memory).</summary>
    private (long Notifications, long Highlights)? Added(string roomId, string userId, string? displayName, CompiledPushRules rules,
        PushRoomContext room, long from, long to)
    {
        if (from == to) return (0, 0);
        // Only what this silo's reader has applied is in memory.
        if (shards.Current.PositionIn(notifier.Current, roomId) < to) return null;
        if (!recent.TryGet(roomId, from, to, int.MaxValue, out var events, out _)) return null;
        foreach (var e in events)
        {
            if (e.Type == "m.room.redaction") return null;
            if (e.Type == "m.room.member" && e.StateKey == userId) return null;
            if (e.Sender == userId && e.StateKey is null) return null;
        }
        return Count(events, rules, room, displayName);
    }

    private static (long Notifications, long Highlights) Count(IEnumerable<StoredEvent> events, CompiledPushRules rules,
        PushRoomContext room, string? displayName)
    {
        long notifications = 0, highlights = 0;
        foreach (var e in events)
        {
            if (e.Redacted || rules.Evaluate(e, room, displayName) is not { Notify: true } actions) continue;
            notifications++;
            if (actions.Highlight) highlights++;
        }
        return (notifications, highlights);
    }
}

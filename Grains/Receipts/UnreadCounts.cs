using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Homeserver.AccountData;
using Homeserver.Rooms;
using Homeserver.Streams;

namespace Homeserver.Receipts;

/// <summary>
/// Unread counts per (room, user) on this silo, kept as of an events position so that a sync woken by a new message
/// adds what the new events change instead of asking the database to count the whole unread stretch again (which
/// grows with every message the user has not read, for every member a message wakes). The new events come from
/// <see cref="RecentRoomEvents"/>; whenever they could move the point counting starts from (the user's own message or
/// membership), or take back a counted event (a redaction), or memory does not hold them, the database counts afresh.
/// A receipt of the user's in the room drops the entry when the reader applies it; a count taken while an
/// invalidation ran is not kept.
/// </summary>
public sealed class UnreadCounts(ReceiptStore store, RecentRoomEvents recent, StreamNotifier notifier, EventShards shards) : IStreamRowHandler
{
    private const int MaxEntries = 200_000;

    private sealed record Entry(long AsOf, string? DisplayName, long Notifications, long Highlights);

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

    /// <summary>The user's (notifications, highlights) in the room counting events up to <paramref name="toPosition"/>
    /// of the room (<see cref="EventShardMap.PositionIn"/>); <paramref name="fresh"/> forces a count from the database (the user's receipts moved).</summary>
    public async Task<(long Notifications, long Highlights)> GetAsync(string roomId, string userId, string? displayName,
        long toPosition, bool fresh)
    {
        var key = (roomId, userId);
        if (!fresh && _entries.TryGetValue(key, out var known) && known.DisplayName == displayName && known.AsOf <= toPosition
            && Added(roomId, userId, displayName, known.AsOf, toPosition) is { } added)
        {
            var counted = known with { AsOf = toPosition, Notifications = known.Notifications + added.Notifications, Highlights = known.Highlights + added.Highlights };
            _entries.TryUpdate(key, counted, known);
            return (counted.Notifications, counted.Highlights);
        }

        var generation = Interlocked.Read(ref _invalidations);
        var (notifications, highlights) = await store.GetUnreadAsync(roomId, userId, displayName, toPosition);
        if (Interlocked.Read(ref _invalidations) == generation)
        {
            if (_entries.Count >= MaxEntries) _entries.Clear();
            _entries[key] = new Entry(toPosition, displayName, notifications, highlights);
        }
        return (notifications, highlights);
    }

    /// <summary>What the room's events in (from, to] add to the user's counts, or null when they could change more than
    /// that (or are not in memory): the same rules as <see cref="ReceiptStore.GetUnreadAsync"/>.</summary>
    private (long Notifications, long Highlights)? Added(string roomId, string userId, string? displayName, long from, long to)
    {
        if (from == to) return (0, 0);
        // Only what this silo's reader has applied is in memory.
        if (shards.Current.PositionIn(notifier.Current, roomId) < to) return null;
        if (!recent.TryGet(roomId, from, to, int.MaxValue, out var events, out _)) return null;
        long notifications = 0, highlights = 0;
        foreach (var e in events)
        {
            if (e.Type == "m.room.redaction") return null;
            if (e.Type == "m.room.member" && e.StateKey == userId) return null;
            if (e.StateKey is not null) continue;
            if (e.Sender == userId) return null;
            if (e.Redacted || e.Type is not ("m.room.message" or "m.room.encrypted")) continue;
            notifications++;
            if (Highlights(Body(e), userId, displayName)) highlights++;
        }
        return (notifications, highlights);
    }

    private static bool Highlights(string body, string userId, string? displayName) =>
        body.Contains(userId, StringComparison.OrdinalIgnoreCase)
        || (!string.IsNullOrEmpty(displayName) && body.Contains(displayName, StringComparison.OrdinalIgnoreCase));

    // One message wakes every member's sync, and each counts it: the body is read from its JSON once per event (the
    // events come from RecentRoomEvents, which hands every sync the same instances).
    private static readonly ConditionalWeakTable<StoredEvent, string> Bodies = new();

    private static string Body(StoredEvent e) => Bodies.GetValue(e, static e => ReadBody(e.Json));

    private static string ReadBody(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.Object
               && content.TryGetProperty("body", out var body) && body.ValueKind == JsonValueKind.String
            ? body.GetString()!
            : "";
    }
}

using System.Collections.Concurrent;
using Homeserver.Streams;

namespace Homeserver.Rooms;

/// <summary>
/// The events this silo's reader applied lately, per room (the last <see cref="PerRoom"/>), so that the syncs a new
/// event wakes (one per member) read it from memory rather than the database. A window that a room no longer holds
/// in full goes to the database; so does one from before this silo started (callers check
/// <see cref="StreamNotifier.Tracks"/>). A redaction rewrites the room's copy of its target.
/// </summary>
public sealed class RecentRoomEvents
{
    private const int PerRoom = 128;
    private readonly ConcurrentDictionary<string, RoomLog> _rooms = new(StringComparer.Ordinal);

    private sealed class RoomLog
    {
        public readonly Lock Gate = new();
        public readonly List<StoredEvent> Events = [];
        public long DroppedUpTo;
    }

    /// <summary>Called by the rooms' row handler for every event row, in stream order per room.</summary>
    public void Applied(StreamEntry entry, RoomEventRow row)
    {
        var log = _rooms.GetOrAdd(row.RoomId, _ => new RoomLog());
        lock (log.Gate)
        {
            if (row.Redacts is not null && row.RedactedJson is not null)
            {
                var i = log.Events.FindIndex(e => e.EventId == row.Redacts);
                if (i >= 0) log.Events[i] = log.Events[i] with { Json = row.RedactedJson, Redacted = true };
            }
            log.Events.Add(new StoredEvent(row.EventId, row.RoomId, row.Type, row.StateKey, row.Sender, row.OriginServerTs,
                row.Topological, entry.Writer, entry.Position, row.Json, row.DeviceId, row.TxnId, false));
            if (log.Events.Count > PerRoom)
            {
                log.DroppedUpTo = log.Events[0].StreamPosition;
                log.Events.RemoveAt(0);
            }
        }
    }

    /// <summary>
    /// As <see cref="RoomEventStore.GetEventsByStreamAsync"/>: the latest <paramref name="limit"/> events with stream
    /// position in (<paramref name="fromExclusive"/>, <paramref name="toInclusive"/>]; false when memory does not
    /// hold the whole window.
    /// </summary>
    public bool TryGet(string roomId, long fromExclusive, long toInclusive, int limit, out IReadOnlyList<StoredEvent> events, out bool limited)
    {
        events = [];
        limited = false;
        if (!_rooms.TryGetValue(roomId, out var log)) return true; // nothing applied for this room since the silo started
        lock (log.Gate)
        {
            if (log.DroppedUpTo > fromExclusive) return false;
            var window = log.Events.Where(e => e.StreamPosition > fromExclusive && e.StreamPosition <= toInclusive).ToList();
            limited = window.Count > limit;
            events = window.Skip(Math.Max(0, window.Count - limit)).ToList();
            return true;
        }
    }
}

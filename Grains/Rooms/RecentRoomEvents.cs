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
    private const int MaxRooms = 20_000;
    private readonly ConcurrentDictionary<string, RoomLog> _rooms = new(StringComparer.Ordinal);
    // Rooms whose log was dropped to bound memory: the highest position dropped per writer. A room without a log is
    // known to have had no event after a position only if that position is at or above this.
    private readonly ConcurrentDictionary<int, long> _droppedRoomsUpTo = new();
    private readonly Lock _evicting = new();

    private sealed class RoomLog
    {
        public readonly Lock Gate = new();
        public readonly List<StoredEvent> Events = [];
        public long DroppedUpTo;
        public int Writer;
        public bool Dead;
        public long Last => Events.Count == 0 ? DroppedUpTo : Events[^1].StreamPosition;
    }

    private void DropQuietestRooms()
    {
        lock (_evicting)
        {
            if (_rooms.Count < MaxRooms) return;
            foreach (var (roomId, log) in _rooms.ToArray().OrderBy(kv => kv.Value.Last).Take(MaxRooms / 10))
            {
                lock (log.Gate)
                {
                    log.Dead = true;
                    _droppedRoomsUpTo.AddOrUpdate(log.Writer, log.Last, (_, known) => Math.Max(known, log.Last));
                    _rooms.TryRemove(roomId, out _);
                }
            }
        }
    }

    /// <summary>Called by the rooms' row handler for every event row, in stream order per room.</summary>
    public void Applied(StreamEntry entry, RoomEventRow row)
    {
        if (!_rooms.ContainsKey(row.RoomId) && _rooms.Count >= MaxRooms) DropQuietestRooms();
        while (true)
        {
            // A new log holds nothing from before it was made: windows starting before the rooms dropped so far go
            // to the database.
            var log = _rooms.GetOrAdd(row.RoomId, _ => new RoomLog
            {
                Writer = entry.Writer,
                DroppedUpTo = _droppedRoomsUpTo.GetValueOrDefault(entry.Writer),
            });
            lock (log.Gate)
            {
                if (log.Dead) continue; // dropped between the lookup and the lock: make a new one
                Append(log, entry, row);
                return;
            }
        }
    }

    // Caller holds log.Gate.
    private static void Append(RoomLog log, StreamEntry entry, RoomEventRow row)
    {
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
    public bool TryGet(string roomId, int writer, long fromExclusive, long toInclusive, int limit, out IReadOnlyList<StoredEvent> events, out bool limited)
    {
        events = [];
        limited = false;
        // No log: nothing applied for this room since the silo started, unless its log was dropped after the window began.
        if (!_rooms.TryGetValue(roomId, out var log)) return fromExclusive >= _droppedRoomsUpTo.GetValueOrDefault(writer);
        lock (log.Gate)
        {
            if (log.Dead || log.DroppedUpTo > fromExclusive) return false;
            var window = log.Events.Where(e => e.StreamPosition > fromExclusive && e.StreamPosition <= toInclusive).ToList();
            limited = window.Count > limit;
            events = window.Skip(Math.Max(0, window.Count - limit)).ToList();
            return true;
        }
    }
}

using System.Collections.Concurrent;
using Homeserver.AccountData;
using Homeserver.Streams;

namespace Homeserver.Receipts;

/// <summary>
/// The receipt rows this silo's reader applied lately, per room, so an incremental /sync woken by a receipt reads it
/// from memory instead of the database (a receipt in a room of N members wakes N syncs). Each room keeps its last
/// <see cref="PerRoom"/> rows; a sync whose token is older than what a room still holds falls back to the database,
/// and so does one older than this silo's start (<see cref="StreamNotifier.Tracks"/>).
/// </summary>
public sealed class RecentReceipts : IStreamRowHandler
{
    private const int PerRoom = 256;
    private const int MaxRooms = 20_000;
    private readonly ConcurrentDictionary<string, RoomLog> _rooms = new(StringComparer.Ordinal);
    // The highest position of a room log dropped to bound memory (see RecentRoomEvents).
    private long _droppedRoomsUpTo;
    private readonly Lock _evicting = new();

    private sealed class RoomLog
    {
        public readonly Lock Gate = new();
        public readonly Queue<(long Position, ReceiptRow Row)> Rows = new();
        public long DroppedUpTo;
        public long Last;
        public bool Dead;
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
                    Interlocked.Exchange(ref _droppedRoomsUpTo, Math.Max(Interlocked.Read(ref _droppedRoomsUpTo), log.Last));
                    _rooms.TryRemove(roomId, out _);
                }
            }
        }
    }

    public string Stream => StreamNames.Receipts;

    public void Handle(StreamEntry entry)
    {
        if (entry.Kind != ReceiptPersister.KindName) return;
        var row = UserStreamSync.Read<ReceiptRow>(entry);
        if (!_rooms.ContainsKey(row.RoomId) && _rooms.Count >= MaxRooms) DropQuietestRooms();
        while (true)
        {
            // A new log holds nothing from before it was made (see RecentRoomEvents).
            var log = _rooms.GetOrAdd(row.RoomId, _ => new RoomLog { DroppedUpTo = Interlocked.Read(ref _droppedRoomsUpTo) });
            lock (log.Gate)
            {
                if (log.Dead) continue;
                Append(log, entry.Position, row);
                return;
            }
        }
    }

    // Caller holds log.Gate.
    private static void Append(RoomLog log, long position, ReceiptRow row)
    {
        {
            log.Rows.Enqueue((position, row));
            log.Last = position;
            while (log.Rows.Count > PerRoom) log.DroppedUpTo = log.Rows.Dequeue().Position;
        }
    }

    /// <summary>The latest receipt per (type, user, thread) set in (since, to] in the rooms, private ones only of
    /// <paramref name="userId"/>, in position order; false when memory does not cover the window.</summary>
    public bool TryGetChanges(IReadOnlyList<string> roomIds, string userId, long since, long to, out List<ReceiptRow> changes)
    {
        changes = [];
        foreach (var roomId in roomIds)
        {
            if (!_rooms.TryGetValue(roomId, out var log))
            {
                if (since < Interlocked.Read(ref _droppedRoomsUpTo)) return false;
                continue;
            }
            lock (log.Gate)
            {
                if (log.Dead || log.DroppedUpTo > since) return false;
                var latest = new Dictionary<(string, string, string), (long Position, ReceiptRow Row)>();
                foreach (var (position, row) in log.Rows)
                {
                    if (position <= since || position > to) continue;
                    if (row.ReceiptType == "m.read.private" && row.UserId != userId) continue;
                    latest[(row.ReceiptType, row.UserId, row.ThreadId)] = (position, row);
                }
                changes.AddRange(latest.Values.OrderBy(v => v.Position).Select(v => v.Row));
            }
        }
        return true;
    }
}

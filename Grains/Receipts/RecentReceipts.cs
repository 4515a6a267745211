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
    private readonly ConcurrentDictionary<string, RoomLog> _rooms = new(StringComparer.Ordinal);

    private sealed class RoomLog
    {
        public readonly Lock Gate = new();
        public readonly Queue<(long Position, ReceiptRow Row)> Rows = new();
        public long DroppedUpTo;
    }

    public string Stream => StreamNames.Receipts;

    public void Handle(StreamEntry entry)
    {
        if (entry.Kind != ReceiptPersister.KindName) return;
        var row = UserStreamSync.Read<ReceiptRow>(entry);
        var log = _rooms.GetOrAdd(row.RoomId, _ => new RoomLog());
        lock (log.Gate)
        {
            log.Rows.Enqueue((entry.Position, row));
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
            if (!_rooms.TryGetValue(roomId, out var log)) continue;
            lock (log.Gate)
            {
                if (log.DroppedUpTo > since) return false;
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

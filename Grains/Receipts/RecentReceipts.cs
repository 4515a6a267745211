using Homeserver.AccountData;
using Homeserver.Caches;
using Homeserver.Streams;

namespace Homeserver.Receipts;

/// <summary>
/// The receipt rows this silo's reader applied lately, per room (<see cref="RecentRows{T}"/>), so an incremental
/// /sync woken by a receipt reads it from memory instead of the database (a receipt in a room of N members wakes N
/// syncs).
/// </summary>
public sealed class RecentReceipts : IStreamRowHandler
{
    /// <summary>Its name among the caches (<c>Homeserver:Caches:Sizes</c>, metrics): the rooms held, each with its last 256 rows.</summary>
    public const string Cache = "receipts.recent";

    private readonly RecentRows<ReceiptRow> _rows;

    public RecentReceipts(CacheRegistry caches)
    {
        _rows = new(perKey: 256, maxKeys: caches.SizeOf(Cache, 20_000));
        caches.Track(Cache, () => new CacheStatus(Cache, _rows.KeyCount, 0, 0, 0));
    }

    public string Stream => StreamNames.Receipts;

    public void Handle(StreamEntry entry)
    {
        if (entry.Kind != ReceiptPersister.KindName) return;
        var row = UserStreamSync.Read<ReceiptRow>(entry);
        _rows.Add(row.RoomId, entry.Position, row);
    }

    /// <summary>The latest receipt per (type, user, thread) set in (since, to] in the rooms, private ones only of
    /// <paramref name="userId"/>, in position order; false when memory does not cover the window.</summary>
    public bool TryGetChanges(IReadOnlyList<string> roomIds, string userId, long since, long to, out List<ReceiptRow> changes)
    {
        changes = [];
        foreach (var roomId in roomIds)
        {
            if (!_rows.TryGetWindow(roomId, since, to, out var window)) return false;
            var latest = new Dictionary<(string, string, string), (int Order, ReceiptRow Row)>();
            for (var i = 0; i < window.Count; i++)
            {
                var row = window[i];
                if (row.ReceiptType == "m.read.private" && row.UserId != userId) continue;
                latest[(row.ReceiptType, row.UserId, row.ThreadId)] = (i, row);
            }
            changes.AddRange(latest.Values.OrderBy(v => v.Order).Select(v => v.Row));
        }
        return true;
    }
}

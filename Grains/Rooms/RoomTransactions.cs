using Homeserver.Streams;

namespace Homeserver.Rooms;

/// <summary>
/// The transaction ids of one room, per sending device, kept by the room's grain so that a new send does not ask the
/// database whether its transaction id was seen before. A transaction id is honoured for
/// <see cref="HomeserverOptions.TransactionIdLifetime"/> (24 hours, as Synapse keeps <c>event_txn_id_device_id</c>),
/// counted from the event's <c>origin_server_ts</c>; the id is the event row's own <c>device_id</c>/<c>txn_id</c>.
/// <para>
/// A device's ids within the lifetime are loaded from <c>events</c> the first time the device sends to the room
/// in this activation; after that the grain, the room's only writer, adds each transaction it commits, so the set is
/// complete and a miss means a new transaction. The latest <see cref="ExactPerDevice"/> ids keep the event they
/// produced; older ones keep only a 64-bit hash, so that a device sending all day costs a few bytes per message and
/// never a database query: a hash hit (an old retry, or a collision) is the one case looked up in the database.
/// </para>
/// </summary>
public sealed class RoomTransactions(RoomWriteStore store, string roomId, TimeSpan lifetime, TimeProvider clock)
{
    public const int ExactPerDevice = 1_000;

    private readonly Dictionary<(string User, string Device), DeviceTransactions> _devices = [];

    private sealed class DeviceTransactions
    {
        public readonly Dictionary<string, (string EventId, long Position)> Exact = new(StringComparer.Ordinal);
        public readonly Queue<(string TxnId, DateTimeOffset At)> ExactOrder = new();
        public readonly Dictionary<ulong, int> Hashed = [];
        public readonly Queue<(ulong Hash, DateTimeOffset At)> HashedOrder = new();

        public void Add(string txnId, string eventId, long position, DateTimeOffset at)
        {
            if (!Exact.TryAdd(txnId, (eventId, position))) return;
            ExactOrder.Enqueue((txnId, at));
            if (ExactOrder.Count <= ExactPerDevice) return;
            var (old, oldAt) = ExactOrder.Dequeue();
            Exact.Remove(old);
            var hash = Hash(old);
            Hashed[hash] = Hashed.GetValueOrDefault(hash) + 1;
            HashedOrder.Enqueue((hash, oldAt));
        }

        /// <summary>Forgets the ids older than <paramref name="cutoff"/>: they are no longer honoured.</summary>
        public void Expire(DateTimeOffset cutoff)
        {
            while (HashedOrder.TryPeek(out var h) && h.At < cutoff)
            {
                HashedOrder.Dequeue();
                if (--Hashed[h.Hash] == 0) Hashed.Remove(h.Hash);
            }
            while (ExactOrder.TryPeek(out var e) && e.At < cutoff)
                Exact.Remove(ExactOrder.Dequeue().TxnId);
        }
    }

    /// <summary>The event and stream position a transaction id already produced, or null.</summary>
    public async Task<(string EventId, long Position)?> FindAsync(string userId, string deviceId, string txnId)
    {
        if (!_devices.TryGetValue((userId, deviceId), out var device))
        {
            device = new DeviceTransactions();
            foreach (var t in await store.LiveTransactionsAsync(userId, deviceId, roomId, lifetime))
                device.Add(t.TxnId, t.EventId, t.Position, t.CreatedAt);
            _devices[(userId, deviceId)] = device;
        }
        device.Expire(clock.GetUtcNow() - lifetime);
        if (device.Exact.TryGetValue(txnId, out var found)) return found;
        if (!device.Hashed.ContainsKey(Hash(txnId))) return null;
        return await store.FindTransactionAsync(userId, deviceId, roomId, txnId, lifetime);
    }

    /// <summary>Records a committed transaction (only for devices already loaded: the others load it from the database).</summary>
    public void Committed(string userId, string deviceId, string txnId, string eventId, long position)
    {
        if (_devices.TryGetValue((userId, deviceId), out var device)) device.Add(txnId, eventId, position, clock.GetUtcNow());
    }

    /// <summary>Forgets everything: after a failed or conflicting append only the database knows what committed.</summary>
    public void Clear() => _devices.Clear();

    // Only ever a hint: a hit is checked in the database.
    private static ulong Hash(string s) => Fnv1a.Hash64(s);
}

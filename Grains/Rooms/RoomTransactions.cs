namespace Homeserver.Rooms;

/// <summary>
/// The transaction ids of one room, per sending device, kept by the room's grain so that a new send does not ask the
/// database whether its transaction id was seen before. A device's ids are loaded from <c>event_txn_ids</c> the first
/// time the device sends to the room in this activation; after that the grain, the room's only writer, adds each
/// transaction it commits. A device with more than <see cref="MaxPerDevice"/> ids keeps only its latest in memory, and
/// an id not found among them is looked up in the database as before.
/// </summary>
public sealed class RoomTransactions(RoomWriteStore store, string roomId)
{
    public const int MaxPerDevice = 1_000;

    private readonly Dictionary<(string User, string Device), DeviceTransactions> _devices = [];

    private sealed class DeviceTransactions
    {
        public readonly Dictionary<string, (string EventId, long Position)> ById = new(StringComparer.Ordinal);
        public readonly Queue<string> Order = new();
        // True while ById holds every transaction id of the device in this room.
        public bool Complete;

        public void Add(string txnId, string eventId, long position)
        {
            if (!ById.TryAdd(txnId, (eventId, position))) return;
            Order.Enqueue(txnId);
            if (Order.Count <= MaxPerDevice) return;
            ById.Remove(Order.Dequeue());
            Complete = false;
        }
    }

    /// <summary>The event and stream position a transaction id already produced, or null.</summary>
    public async Task<(string EventId, long Position)?> FindAsync(string userId, string deviceId, string txnId)
    {
        if (!_devices.TryGetValue((userId, deviceId), out var device))
        {
            var recent = await store.RecentTransactionsAsync(userId, deviceId, roomId, MaxPerDevice + 1);
            device = new DeviceTransactions { Complete = recent.Count <= MaxPerDevice };
            // Oldest first, so the queue evicts in age order.
            for (var i = Math.Min(recent.Count, MaxPerDevice) - 1; i >= 0; i--)
                device.Add(recent[i].TxnId, recent[i].EventId, recent[i].Position);
            _devices[(userId, deviceId)] = device;
        }
        if (device.ById.TryGetValue(txnId, out var found)) return found;
        if (device.Complete) return null;
        return await store.FindTransactionAsync(userId, deviceId, roomId, txnId);
    }

    /// <summary>Records a committed transaction (only for devices already loaded: the others load it from the database).</summary>
    public void Committed(string userId, string deviceId, string txnId, string eventId, long position)
    {
        if (_devices.TryGetValue((userId, deviceId), out var device)) device.Add(txnId, eventId, position);
    }

    /// <summary>Forgets everything: after a failed or conflicting append only the database knows what committed.</summary>
    public void Clear() => _devices.Clear();
}

using Homeserver.AccountData;
using Homeserver.Streams;
using Npgsql;

namespace Homeserver.ToDevice;

/// <summary>The stream row: one message for some of one user's devices (device id → content JSON).</summary>
public sealed record ToDeviceRow(string Sender, string SenderDevice, string TxnId, string Recipient, string Type, Dictionary<string, string> Messages);

/// <summary>A queued message as /sync delivers it.</summary>
public sealed record ToDeviceMessage(long Position, string Sender, string Type, string Content);

/// <summary>The device inboxes, transaction ids and the devices messages may go to.</summary>
public sealed class ToDeviceStore(NpgsqlDataSource db)
{
    public async Task<bool> TxnSeenAsync(string userId, string deviceId, string txnId)
    {
        await using var cmd = db.CreateCommand("SELECT 1 FROM to_device_txns WHERE user_id = $1 AND device_id = $2 AND txn_id = $3");
        cmd.Parameters.AddWithValue(userId);
        cmd.Parameters.AddWithValue(deviceId);
        cmd.Parameters.AddWithValue(txnId);
        return await cmd.ExecuteScalarAsync() is not null;
    }

    /// <summary>The devices of each of <paramref name="userIds"/> (users without devices are absent).</summary>
    public async Task<Dictionary<string, HashSet<string>>> GetDevicesAsync(IReadOnlyCollection<string> userIds)
    {
        await using var cmd = db.CreateCommand("SELECT user_id, device_id FROM devices WHERE user_id = ANY($1)");
        cmd.Parameters.AddWithValue(userIds.ToArray());
        var devices = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            var user = reader.GetString(0);
            if (!devices.TryGetValue(user, out var set)) devices[user] = set = new HashSet<string>(StringComparer.Ordinal);
            set.Add(reader.GetString(1));
        }
        return devices;
    }

    /// <summary>
    /// The device's queue for a /sync from <paramref name="since"/> to <paramref name="to"/>: first drops what a sync
    /// up to <paramref name="since"/> already delivered (the client presenting <c>since</c> proves it received it), then
    /// returns the messages in (since, to], oldest first.
    /// </summary>
    public async Task<IReadOnlyList<ToDeviceMessage>> TakeAsync(string userId, string deviceId, long since, long to)
    {
        await using var batch = db.CreateBatch();
        if (since > 0)
            batch.BatchCommands.Add(new NpgsqlBatchCommand("DELETE FROM device_inbox WHERE user_id = $1 AND device_id = $2 AND stream_position <= $3")
            {
                Parameters = { new() { Value = userId }, new() { Value = deviceId }, new() { Value = since } }
            });
        batch.BatchCommands.Add(new NpgsqlBatchCommand(
            "SELECT stream_position, sender, type, content FROM device_inbox WHERE user_id = $1 AND device_id = $2 AND stream_position > $3 AND stream_position <= $4 ORDER BY stream_position")
        {
            Parameters = { new() { Value = userId }, new() { Value = deviceId }, new() { Value = since }, new() { Value = to } }
        });
        var messages = new List<ToDeviceMessage>();
        await using var reader = await batch.ExecuteReaderAsync();
        while (await reader.ReadAsync())
            messages.Add(new ToDeviceMessage(reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.GetString(3)));
        return messages;
    }
}

public sealed class ToDevicePersister : IStreamRowPersister
{
    public const string KindName = "to_device.send";
    public string Kind => KindName;

    public void AddCommands(NpgsqlBatch batch, StreamEntry entry)
    {
        var row = UserStreamSync.Read<ToDeviceRow>(entry);
        if (row.Messages.Count > 0)
            batch.BatchCommands.Add(new NpgsqlBatchCommand(
                """
                INSERT INTO device_inbox (user_id, device_id, stream_position, sender, type, content)
                SELECT $1, d, $2, $3, $4, c FROM unnest($5::text[], $6::text[]) AS m(d, c)
                """)
            {
                Parameters =
                {
                    new() { Value = row.Recipient }, new() { Value = entry.Position }, new() { Value = row.Sender }, new() { Value = row.Type },
                    new() { Value = row.Messages.Keys.ToArray() }, new() { Value = row.Messages.Values.ToArray() },
                }
            });
        batch.BatchCommands.Add(new NpgsqlBatchCommand(
            "INSERT INTO to_device_txns (user_id, device_id, txn_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        {
            Parameters = { new() { Value = row.Sender }, new() { Value = row.SenderDevice }, new() { Value = row.TxnId } }
        });
    }
}

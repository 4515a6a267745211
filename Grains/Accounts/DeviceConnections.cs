using Npgsql;

namespace Homeserver.Accounts;

/// <summary>A device and where its clients connected from, latest first.</summary>
public sealed record DeviceWithConnections(DeviceInfo Device, IReadOnlyList<RecordedConnection> Connections)
{
    /// <summary>The latest connection (<c>last_seen_ip</c>, <c>last_seen_ts</c>), null when none was recorded.</summary>
    public RecordedConnection? LastSeen => Connections.Count > 0 ? Connections[0] : null;
}

/// <summary>One (ip, user agent) a device's client used, and when last (milliseconds since the epoch).</summary>
public sealed record RecordedConnection(string Ip, string UserAgent, long LastSeen);

/// <summary>
/// A user's devices with their recorded connections: the devices from the user's grain (their owner), the connections
/// from <c>client_ips</c> merged with what this process has not flushed yet (<see cref="ClientIpBatch"/>), so a
/// request shows up at once on the process that served it and within the flush period on every other.
/// </summary>
public sealed class DeviceConnections(IGrainFactory grains, NpgsqlDataSource db, ClientIpBatch batch)
{
    /// <summary>Every device of the user (null when there is no such user), for whois.</summary>
    public async Task<DeviceWithConnections[]?> WhoisAsync(string userId)
    {
        var user = grains.GetGrain<IUserGrain>(userId);
        var exists = user.ExistsAsync();
        var devices = user.GetDevicesAsync();
        var connections = LoadAsync(userId);
        if (!await exists) return null;
        return Join(await devices, await connections);
    }

    /// <summary>The user's devices, for <c>GET /devices</c>.</summary>
    public async Task<DeviceWithConnections[]> GetDevicesAsync(string userId)
    {
        var devices = grains.GetGrain<IUserGrain>(userId).GetDevicesAsync();
        var connections = LoadAsync(userId);
        return Join(await devices, await connections);
    }

    /// <summary>One device of the user (null when it has no such device), for <c>GET /devices/{deviceId}</c>.</summary>
    public async Task<DeviceWithConnections?> GetDeviceAsync(string userId, string deviceId)
    {
        var device = grains.GetGrain<IUserGrain>(userId).GetDeviceAsync(deviceId);
        var connections = LoadAsync(userId, deviceId);
        return await device is { } found ? Join([found], await connections)[0] : null;
    }

    private static DeviceWithConnections[] Join(DeviceInfo[] devices, Dictionary<string, Dictionary<(string Ip, string UserAgent), long>> connections) =>
        devices.Select(d => new DeviceWithConnections(d, connections.TryGetValue(d.DeviceId, out var seen)
            ? seen.Select(c => new RecordedConnection(c.Key.Ip, c.Key.UserAgent, c.Value))
                .OrderByDescending(c => c.LastSeen).ThenBy(c => c.Ip, StringComparer.Ordinal).ToList()
            : [])).ToArray();

    /// <summary>Device → (ip, user agent) → last seen: the table's rows with this process's pending ones over them
    /// (whichever is later wins).</summary>
    private async Task<Dictionary<string, Dictionary<(string Ip, string UserAgent), long>>> LoadAsync(string userId, string? deviceId = null)
    {
        // The pending ones first: a flush removes entries only after its commit, so one that left the batch before
        // this read is in the table for the query below.
        var pending = batch.PendingFor(userId);
        var byDevice = new Dictionary<string, Dictionary<(string, string), long>>(StringComparer.Ordinal);
        void Add(string device, string ip, string userAgent, long lastSeen)
        {
            if (deviceId is not null && device != deviceId) return;
            if (!byDevice.TryGetValue(device, out var seen)) byDevice[device] = seen = [];
            if (!seen.TryGetValue((ip, userAgent), out var known) || known < lastSeen) seen[(ip, userAgent)] = lastSeen;
        }

        await using (var cmd = db.CreateCommand(
            "SELECT device_id, ip, user_agent, last_seen FROM client_ips WHERE user_id = $1 AND ($2::text IS NULL OR device_id = $2)"))
        {
            cmd.Parameters.AddWithValue(userId);
            cmd.Parameters.Add(new NpgsqlParameter { Value = (object?)deviceId ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
            await using var reader = await cmd.ExecuteReaderAsync();
            while (await reader.ReadAsync()) Add(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetInt64(3));
        }
        foreach (var p in pending) Add(p.DeviceId, p.Ip, p.UserAgent, p.LastSeen);
        return byDevice;
    }
}

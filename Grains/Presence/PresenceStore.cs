using Homeserver.AccountData;
using Homeserver.Streams;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Homeserver.Presence;

/// <summary><c>Homeserver:EnablePresence</c>, <c>Homeserver:PresenceIdleTimeout</c>, <c>Homeserver:PresenceSyncTimeout</c>,
/// <c>Homeserver:PresenceLastActiveGranularity</c> and <c>Homeserver:PresenceWakeDelay</c>.</summary>
public sealed class PresenceOptions
{
    public bool EnablePresence { get; set; } = true;

    /// <summary>How long an online user may show no activity (no /sync, no presence update) before becoming unavailable.</summary>
    public TimeSpan PresenceIdleTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How long after a client's /sync ends (plus the wait that sync asked for) without another one the user
    /// is marked offline. Synapse uses 30 seconds.</summary>
    public TimeSpan PresenceSyncTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>An online user active within this long is <c>currently_active</c>, and their further activity moves
    /// <c>last_active</c> only in memory (stored at most this often), waking nobody. One whose activity stops for this
    /// long is told to the others once (no longer currently active), and their next activity once more. Synapse's
    /// <c>LAST_ACTIVE_GRANULARITY</c>, 60 seconds.</summary>
    public TimeSpan PresenceLastActiveGranularity { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>How long a long-poll woken by nothing but presence changes of the members of its rooms waits to gather
    /// more before it answers (a message, or anything else, still answers at once). In a room of 10,000 members with
    /// 1,000 of them syncing, each one coming online would otherwise answer the other 999 long-polls once each.
    /// Zero answers at once.</summary>
    public TimeSpan PresenceWakeDelay { get; set; } = TimeSpan.FromSeconds(1);
}

public sealed class PresenceStore(NpgsqlDataSource db)
{
    public static readonly string[] States = ["online", "offline", "unavailable"];

    /// <summary>The stream key of a user's presence rows. Not the bare user id, which keys the user's own streams
    /// (account data, to-device...): a user coming online must wake those who share a room with them, not every
    /// waiter of the user's own data.</summary>
    public static string Key(string userId) => KeyPrefix + userId;

    /// <summary>What every presence row's key starts with.</summary>
    public const string KeyPrefix = "presence/";

    public async Task<PresenceRow?> GetAsync(string userId) => (await GetChangesAsync([userId], 0, long.MaxValue)).FirstOrDefault();

    /// <summary>Stores a newer <c>last_active</c> of a user whose presence did not otherwise change: no stream row, so it
    /// wakes nobody (a later row carries it to the clients).</summary>
    public async Task StoreLastActiveAsync(string userId, long lastActiveTs)
    {
        await using var cmd = db.CreateCommand("UPDATE presence SET last_active_ts = $2 WHERE user_id = $1 AND last_active_ts < $2");
        cmd.Parameters.AddWithValue(userId);
        cmd.Parameters.AddWithValue(lastActiveTs);
        await cmd.ExecuteNonQueryAsync();
    }

    /// <summary>The presence of those users that changed in (from, to] (from 0: everyone's current state).</summary>
    public async Task<IReadOnlyList<PresenceRow>> GetChangesAsync(IReadOnlyCollection<string> userIds, long from, long to)
    {
        await using var cmd = db.CreateCommand(
            """
            SELECT user_id, state, status_msg, last_active_ts, currently_active FROM presence
             WHERE user_id = ANY($1) AND stream_position > $2 AND stream_position <= $3 ORDER BY stream_position
            """);
        cmd.Parameters.AddWithValue(userIds.ToArray());
        cmd.Parameters.AddWithValue(from);
        cmd.Parameters.AddWithValue(to);
        var rows = new List<PresenceRow>();
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync())
            rows.Add(new PresenceRow(reader.GetString(0), reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2), reader.GetInt64(3), reader.GetBoolean(4)));
        return rows;
    }
}

public sealed class PresencePersister : IStreamRowPersister
{
    public const string KindName = "presence.set";
    public string Kind => KindName;

    public void AddCommands(NpgsqlBatch batch, StreamEntry entry)
    {
        var row = UserStreamSync.Read<PresenceRow>(entry);
        batch.BatchCommands.Add(new NpgsqlBatchCommand(
            """
            INSERT INTO presence (user_id, state, status_msg, last_active_ts, currently_active, stream_position) VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (user_id) DO UPDATE SET state = EXCLUDED.state, status_msg = EXCLUDED.status_msg, last_active_ts = EXCLUDED.last_active_ts,
                currently_active = EXCLUDED.currently_active, stream_position = EXCLUDED.stream_position
            """)
        {
            Parameters =
            {
                new() { Value = row.UserId }, new() { Value = row.State }, new() { Value = (object?)row.StatusMsg ?? DBNull.Value },
                new() { Value = row.LastActiveTs }, new() { Value = row.CurrentlyActive }, new() { Value = entry.Position },
            }
        });
    }
}

/// <summary>
/// A presence grain lives only in memory, so a silo that went away took the timers of its users with it: one stored
/// as online or unavailable would stay so until touched. Every few minutes the presence writer's housekeeping wakes
/// the grain of every such user; one whose clients no longer sync goes offline a sync timeout later.
/// </summary>
public sealed class PresenceWatchdog(NpgsqlDataSource db, IGrainFactory grains, IOptions<PresenceOptions> options) : IStreamHousekeeper
{
    public string Stream => StreamNames.Presence;
    public TimeSpan Period => TimeSpan.FromMinutes(5);

    public async Task RunAsync(CancellationToken ct)
    {
        if (!options.Value.EnablePresence) return;
        var users = new List<string>();
        await using (var cmd = db.CreateCommand("SELECT user_id FROM presence WHERE state <> 'offline'"))
        await using (var reader = await cmd.ExecuteReaderAsync(ct))
            while (await reader.ReadAsync(ct)) users.Add(reader.GetString(0));
        foreach (var chunk in users.Chunk(100))
            await Task.WhenAll(chunk.Select(u => grains.GetGrain<IPresenceGrain>(u).WatchAsync()));
    }
}

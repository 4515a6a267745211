using System.Text.Json;
using Homeserver.Caches;
using Homeserver.Rooms;
using Homeserver.Streams;
using Npgsql;

namespace Homeserver.Pushers;

/// <summary>The <c>pushers</c> table: settings, and each pusher's delivery position.</summary>
public sealed class PusherStore(NpgsqlDataSource db)
{
    public async Task<PusherInfo[]> GetForUserAsync(string userId)
    {
        await using var cmd = db.CreateCommand(
            """
            SELECT kind, app_id, pushkey, app_display_name, device_display_name, profile_tag, lang, data, device_id, pushkey_ts, stream_position
              FROM pushers WHERE user_id = $1 ORDER BY pushkey_ts, app_id, pushkey
            """);
        cmd.Parameters.AddWithValue(userId);
        var pushers = new List<PusherInfo>();
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync())
            pushers.Add(new PusherInfo(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetString(4),
                reader.IsDBNull(5) ? null : reader.GetString(5), reader.GetString(6), reader.GetString(7),
                reader.IsDBNull(8) ? null : reader.GetString(8), reader.GetInt64(9), reader.GetInt64(10)));
        return pushers.ToArray();
    }

    /// <summary>The other users with a pusher of this app id and pushkey (a device that changed hands).</summary>
    public async Task<string[]> GetOtherUsersAsync(string appId, string pushKey, string userId)
    {
        await using var cmd = db.CreateCommand("SELECT user_id FROM pushers WHERE app_id = $1 AND pushkey = $2 AND user_id <> $3");
        cmd.Parameters.AddWithValue(appId);
        cmd.Parameters.AddWithValue(pushKey);
        cmd.Parameters.AddWithValue(userId);
        var users = new List<string>();
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync()) users.Add(reader.GetString(0));
        return users.ToArray();
    }

    /// <summary>Every user with at least one pusher (for <see cref="PusherDirectory"/>).</summary>
    public async Task<HashSet<string>> GetUsersAsync()
    {
        await using var cmd = db.CreateCommand("SELECT DISTINCT user_id FROM pushers");
        var users = new HashSet<string>(StringComparer.Ordinal);
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync()) users.Add(reader.GetString(0));
        return users;
    }

    /// <summary>Users with a pusher that has not delivered up to <paramref name="upTo"/> although one of their rooms has
    /// events from others past its position, or an invite: the pushers a lost wake-up left behind.</summary>
    public async Task<IReadOnlyList<(string UserId, long Behind)>> GetBehindAsync(long upTo, int limit)
    {
        await using var cmd = db.CreateCommand(
            """
            SELECT p.user_id, min(p.stream_position) FROM pushers p
             WHERE p.stream_position < $1
               AND (EXISTS (SELECT 1 FROM room_memberships m JOIN events e ON e.room_id = m.room_id
                             WHERE m.user_id = p.user_id AND m.membership = 'join'
                               AND e.stream_position > GREATEST(p.stream_position, m.stream_position) AND e.stream_position <= $1
                               AND e.sender <> p.user_id)
                    OR EXISTS (SELECT 1 FROM room_memberships m WHERE m.user_id = p.user_id AND m.membership = 'invite'
                                AND m.stream_position > p.stream_position AND m.stream_position <= $1))
             GROUP BY p.user_id LIMIT $2
            """);
        cmd.Parameters.AddWithValue(upTo);
        cmd.Parameters.AddWithValue(limit);
        var behind = new List<(string, long)>();
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync()) behind.Add((reader.GetString(0), reader.GetInt64(1)));
        return behind;
    }

    /// <summary>
    /// Moves a pusher's position from <paramref name="from"/> to <paramref name="to"/>; false when it was not at
    /// <paramref name="from"/> any more (another activation delivered, or the pusher was replaced or deleted): the
    /// caller then stops and reloads instead of pushing twice.
    /// </summary>
    public async Task<bool> AdvanceAsync(string userId, string appId, string pushKey, long from, long to)
    {
        await using var cmd = db.CreateCommand(
            "UPDATE pushers SET stream_position = $5 WHERE user_id = $1 AND app_id = $2 AND pushkey = $3 AND stream_position = $4");
        cmd.Parameters.AddWithValue(userId);
        cmd.Parameters.AddWithValue(appId);
        cmd.Parameters.AddWithValue(pushKey);
        cmd.Parameters.AddWithValue(from);
        cmd.Parameters.AddWithValue(to);
        return await cmd.ExecuteNonQueryAsync() == 1;
    }
}

/// <summary>
/// Rows of the <c>caches</c> stream that change pushers: the table change commits with the row, and every silo's
/// <see cref="PusherDirectory"/> learns from the row whether the user still has pushers.
/// </summary>
public static class PusherRows
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>Upserts <see cref="Set"/> (null: deletes <see cref="AppId"/>/<see cref="PushKey"/>), deletes the same
    /// app id and pushkey of the users in <see cref="Displaced"/>, and says whether each named user has pushers left.</summary>
    public sealed record PushersChanged(string UserId, string AppId, string PushKey, PusherInfo? Set, string[] Displaced, bool UserHasPushers);

    public static StreamRow Changed(PushersChanged change) =>
        new(PushersChangedPersister.KindName, change.UserId, JsonSerializer.Serialize(change, Json));

    internal static PushersChanged Read(StreamEntry entry) =>
        JsonSerializer.Deserialize<PushersChanged>(entry.Payload, Json) ?? throw new InvalidOperationException($"Empty {entry.Kind} row");
}

public sealed class PushersChangedPersister : IStreamRowPersister
{
    public const string KindName = "pushers.changed";
    public string Kind => KindName;

    public void AddCommands(NpgsqlBatch batch, StreamEntry entry)
    {
        var row = PusherRows.Read(entry);
        if (row.AppId.Length == 0) return; // only tells the directories that the user has no pushers left
        if (row.Displaced.Length > 0)
            batch.BatchCommands.Add(new NpgsqlBatchCommand("DELETE FROM pushers WHERE app_id = $1 AND pushkey = $2 AND user_id = ANY($3)")
            {
                Parameters = { new() { Value = row.AppId }, new() { Value = row.PushKey }, new() { Value = row.Displaced } }
            });
        if (row.Set is not { } p)
        {
            batch.BatchCommands.Add(new NpgsqlBatchCommand("DELETE FROM pushers WHERE user_id = $1 AND app_id = $2 AND pushkey = $3")
            {
                Parameters = { new() { Value = row.UserId }, new() { Value = row.AppId }, new() { Value = row.PushKey } }
            });
            return;
        }
        // A replaced pusher keeps its delivery position: changing a pusher's settings must not resend or skip anything.
        batch.BatchCommands.Add(new NpgsqlBatchCommand(
            """
            INSERT INTO pushers (user_id, app_id, pushkey, kind, app_display_name, device_display_name, profile_tag, lang, data, device_id, pushkey_ts, stream_position)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
            ON CONFLICT (user_id, app_id, pushkey) DO UPDATE SET kind = EXCLUDED.kind, app_display_name = EXCLUDED.app_display_name,
                device_display_name = EXCLUDED.device_display_name, profile_tag = EXCLUDED.profile_tag, lang = EXCLUDED.lang,
                data = EXCLUDED.data, device_id = EXCLUDED.device_id, pushkey_ts = EXCLUDED.pushkey_ts
            """)
        {
            Parameters =
            {
                new() { Value = row.UserId }, new() { Value = p.AppId }, new() { Value = p.PushKey }, new() { Value = p.Kind },
                new() { Value = p.AppDisplayName }, new() { Value = p.DeviceDisplayName }, new() { Value = (object?)p.ProfileTag ?? DBNull.Value },
                new() { Value = p.Lang }, new() { Value = p.DataJson }, new() { Value = (object?)p.DeviceId ?? DBNull.Value },
                new() { Value = p.PushKeyTs }, new() { Value = p.Position },
            }
        });
    }
}

/// <summary>
/// Which users have pushers, on this silo: the room grains read it after every commit to wake only those members'
/// <see cref="IPushersGrain"/>. Loaded once from the table, then kept by the <c>pushers.changed</c> rows this silo's
/// reader applies (changes that arrive while the load runs are applied over it). It may name a user whose pushers
/// went with a deleted device: that user's grain, woken for nothing, says so with a row of its own.
/// </summary>
public sealed class PusherDirectory(PusherStore store) : IStreamRowHandler
{
    private readonly object _lock = new();
    private HashSet<string>? _users;
    private List<PusherRows.PushersChanged>? _duringLoad;
    private Task? _loading;

    public string Stream => StreamNames.Caches;

    public void Handle(StreamEntry entry)
    {
        if (entry.Kind != PushersChangedPersister.KindName) return;
        var row = PusherRows.Read(entry);
        lock (_lock)
        {
            _duringLoad?.Add(row);
            if (_users is not null) Apply(_users, row);
        }
    }

    private static void Apply(HashSet<string> users, PusherRows.PushersChanged row)
    {
        // A displaced user may have other pushers: they stay named until their own grain says otherwise.
        if (row.UserHasPushers) users.Add(row.UserId);
        else users.Remove(row.UserId);
    }

    public Task EnsureLoadedAsync()
    {
        lock (_lock)
        {
            if (_users is not null) return Task.CompletedTask;
            return _loading ??= LoadAsync();
        }
    }

    private async Task LoadAsync()
    {
        lock (_lock) _duringLoad = [];
        try
        {
            var users = await store.GetUsersAsync();
            lock (_lock)
            {
                foreach (var row in _duringLoad!) Apply(users, row);
                _users = users;
            }
        }
        finally
        {
            lock (_lock) { _duringLoad = null; _loading = null; }
        }
    }

    public bool AnyPushers
    {
        get { lock (_lock) return _users is { Count: > 0 }; }
    }

    /// <summary>Whether the user has pushers (false before the first load finished).</summary>
    public bool HasPushers(string userId)
    {
        lock (_lock) return _users?.Contains(userId) == true;
    }

    /// <summary>The users with pushers for whom <paramref name="concerned"/> holds, where every such user is among
    /// <paramref name="candidates"/> (about <paramref name="candidateCount"/> of them): whichever side is smaller is
    /// walked, so a room of 10,000 members costs a look per pusher user, not per member.</summary>
    public List<string> Select(Func<string, bool> concerned, IEnumerable<string> candidates, int candidateCount)
    {
        lock (_lock)
        {
            if (_users is not { Count: > 0 } users) return [];
            return users.Count <= candidateCount
                ? users.Where(concerned).ToList()
                : candidates.Where(u => users.Contains(u) && concerned(u)).Distinct().ToList();
        }
    }
}

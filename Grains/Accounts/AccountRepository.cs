using Npgsql;

namespace Homeserver.Accounts;

/// <summary>The <c>users</c>, <c>devices</c> and <c>access_tokens</c> tables.</summary>
public sealed class AccountRepository(NpgsqlDataSource db)
{
    public sealed record StoredUser(string? PasswordHash, bool IsGuest, bool Deactivated, bool Admin);

    public sealed record StoredDevice(string DeviceId, string? DisplayName, List<byte[]> TokenHashes);

    public sealed record NewSession(string DeviceId, string? DisplayName, byte[] TokenHash, bool DeviceExists);

    public async Task<(StoredUser? User, List<StoredDevice> Devices)> LoadAsync(string userId)
    {
        await using var batch = db.CreateBatch();
        batch.BatchCommands.Add(new NpgsqlBatchCommand("SELECT password_hash, is_guest, deactivated, admin FROM users WHERE user_id = $1")
        {
            Parameters = { new() { Value = userId } }
        });
        batch.BatchCommands.Add(new NpgsqlBatchCommand("SELECT device_id, display_name FROM devices WHERE user_id = $1 ORDER BY device_id")
        {
            Parameters = { new() { Value = userId } }
        });
        batch.BatchCommands.Add(new NpgsqlBatchCommand("SELECT device_id, token_hash FROM access_tokens WHERE user_id = $1")
        {
            Parameters = { new() { Value = userId } }
        });
        await using var reader = await batch.ExecuteReaderAsync();
        StoredUser? user = null;
        if (await reader.ReadAsync()) user = new StoredUser(reader.IsDBNull(0) ? null : reader.GetString(0), reader.GetBoolean(1), reader.GetBoolean(2), reader.GetBoolean(3));
        await reader.NextResultAsync();
        var devices = new Dictionary<string, StoredDevice>(StringComparer.Ordinal);
        while (await reader.ReadAsync())
        {
            var id = reader.GetString(0);
            devices[id] = new StoredDevice(id, reader.IsDBNull(1) ? null : reader.GetString(1), []);
        }
        await reader.NextResultAsync();
        while (await reader.ReadAsync())
            if (devices.TryGetValue(reader.GetString(0), out var device)) device.TokenHashes.Add((byte[])reader[1]);
        return (user, devices.Values.ToList());
    }

    /// <summary>Creates the user and, optionally, its first device and token in one transaction. False when the
    /// user id is taken (the primary key decides between concurrent registrations).</summary>
    public async Task<bool> InsertUserAsync(string userId, string? passwordHash, bool isGuest, bool admin, string? userType, NewSession? session)
    {
        await using var batch = db.CreateBatch();
        batch.BatchCommands.Add(new NpgsqlBatchCommand("INSERT INTO users (user_id, password_hash, is_guest, admin, user_type) VALUES ($1, $2, $3, $4, $5)")
        {
            Parameters =
            {
                new() { Value = userId }, new() { Value = (object?)passwordHash ?? DBNull.Value }, new() { Value = isGuest },
                new() { Value = admin }, new() { Value = (object?)userType ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text },
            }
        });
        if (session is not null) AddSessionCommands(batch, userId, session);
        try
        {
            await batch.ExecuteNonQueryAsync();
            return true;
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation && e.ConstraintName == "users_pkey")
        {
            return false;
        }
    }

    /// <summary>Adds a device (unless it exists) and a token for it, in one transaction.</summary>
    public async Task InsertSessionAsync(string userId, NewSession session)
    {
        await using var batch = db.CreateBatch();
        AddSessionCommands(batch, userId, session);
        await batch.ExecuteNonQueryAsync();
    }

    private static void AddSessionCommands(NpgsqlBatch batch, string userId, NewSession session)
    {
        if (!session.DeviceExists)
        {
            batch.BatchCommands.Add(new NpgsqlBatchCommand(
                "INSERT INTO devices (user_id, device_id, display_name) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            {
                Parameters = { new() { Value = userId }, new() { Value = session.DeviceId }, new() { Value = (object?)session.DisplayName ?? DBNull.Value } }
            });
            // A flush that raced the deletion of an earlier device with this id may have left its rows behind; a new
            // device starts with none.
            batch.BatchCommands.Add(new NpgsqlBatchCommand("DELETE FROM client_ips WHERE user_id = $1 AND device_id = $2")
            {
                Parameters = { new() { Value = userId }, new() { Value = session.DeviceId } }
            });
        }
        batch.BatchCommands.Add(new NpgsqlBatchCommand("INSERT INTO access_tokens (token_hash, user_id, device_id) VALUES ($1, $2, $3)")
        {
            Parameters = { new() { Value = session.TokenHash }, new() { Value = userId }, new() { Value = session.DeviceId } }
        });
    }

    public async Task UpdateDisplayNameAsync(string userId, string deviceId, string? displayName)
    {
        await using var cmd = db.CreateCommand("UPDATE devices SET display_name = $3 WHERE user_id = $1 AND device_id = $2");
        cmd.Parameters.AddWithValue(userId);
        cmd.Parameters.AddWithValue(deviceId);
        cmd.Parameters.Add(new NpgsqlParameter { Value = (object?)displayName ?? DBNull.Value });
        await cmd.ExecuteNonQueryAsync();
    }

    public async Task UpdatePasswordAsync(string userId, string passwordHash)
    {
        await using var cmd = db.CreateCommand("UPDATE users SET password_hash = $2 WHERE user_id = $1");
        cmd.Parameters.AddWithValue(userId);
        cmd.Parameters.AddWithValue(passwordHash);
        await cmd.ExecuteNonQueryAsync();
    }

    /// <summary>Makes the user a server admin, or no longer one.</summary>
    public async Task SetAdminAsync(string userId, bool admin)
    {
        await using var cmd = db.CreateCommand("UPDATE users SET admin = $2 WHERE user_id = $1");
        cmd.Parameters.AddWithValue(userId);
        cmd.Parameters.AddWithValue(admin);
        await cmd.ExecuteNonQueryAsync();
    }

    public async Task SetUserTypeAsync(string userId, string? userType)
    {
        await using var cmd = db.CreateCommand("UPDATE users SET user_type = $2 WHERE user_id = $1");
        cmd.Parameters.AddWithValue(userId);
        cmd.Parameters.Add(new NpgsqlParameter { Value = (object?)userType ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        await cmd.ExecuteNonQueryAsync();
    }

    /// <summary>The account may log in again, with this password. Erased stays erased (as in Synapse).</summary>
    public async Task ReactivateAsync(string userId, string passwordHash)
    {
        await using var cmd = db.CreateCommand("UPDATE users SET deactivated = false, password_hash = $2 WHERE user_id = $1");
        cmd.Parameters.AddWithValue(userId);
        cmd.Parameters.AddWithValue(passwordHash);
        await cmd.ExecuteNonQueryAsync();
    }

    /// <summary>A guest becomes a full account (spec "Guest access": registering with <c>guest_access_token</c>);
    /// false when the user is not (or no longer) a guest.</summary>
    public async Task<bool> UpgradeGuestAsync(string userId, string passwordHash)
    {
        await using var cmd = db.CreateCommand("UPDATE users SET password_hash = $2, is_guest = false WHERE user_id = $1 AND is_guest");
        cmd.Parameters.AddWithValue(userId);
        cmd.Parameters.AddWithValue(passwordHash);
        return await cmd.ExecuteNonQueryAsync() == 1;
    }

    /// <summary>No login from now on: the flag and the removal of the password hash in one statement; with
    /// <paramref name="erase"/>, the user is marked erased too (never unmarked).</summary>
    public async Task DeactivateAsync(string userId, bool erase)
    {
        await using var cmd = db.CreateCommand("UPDATE users SET deactivated = true, erased = erased OR $2, password_hash = NULL WHERE user_id = $1");
        cmd.Parameters.AddWithValue(userId);
        cmd.Parameters.AddWithValue(erase);
        await cmd.ExecuteNonQueryAsync();
    }

    /// <summary>Whether the user deactivated with erase.</summary>
    public async Task<bool> IsErasedAsync(string userId)
    {
        await using var cmd = db.CreateCommand("SELECT erased FROM users WHERE user_id = $1");
        cmd.Parameters.AddWithValue(userId);
        return await cmd.ExecuteScalarAsync() is true;
    }

    /// <summary>Which of <paramref name="userIds"/> are erased, in one query.</summary>
    public async Task<HashSet<string>> GetErasedAsync(string[] userIds)
    {
        await using var cmd = db.CreateCommand("SELECT user_id FROM users WHERE user_id = ANY($1) AND erased");
        cmd.Parameters.AddWithValue(userIds);
        var erased = new HashSet<string>(StringComparer.Ordinal);
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync()) erased.Add(reader.GetString(0));
        return erased;
    }

    public async Task<bool> UserExistsAsync(string userId)
    {
        await using var cmd = db.CreateCommand("SELECT 1 FROM users WHERE user_id = $1");
        cmd.Parameters.AddWithValue(userId);
        return await cmd.ExecuteScalarAsync() is not null;
    }

    /// <summary>The requester behind a token hash, or null when the token is unknown or revoked.</summary>
    public async Task<Requester?> FindRequesterAsync(byte[] tokenHash)
    {
        await using var cmd = db.CreateCommand(
            """
            SELECT t.user_id, t.device_id, u.is_guest
              FROM access_tokens t JOIN users u ON u.user_id = t.user_id
             WHERE t.token_hash = $1
            """);
        cmd.Parameters.AddWithValue(tokenHash);
        await using var reader = await cmd.ExecuteReaderAsync();
        return await reader.ReadAsync() ? new Requester(reader.GetString(0), reader.GetString(1), reader.GetBoolean(2)) : null;
    }
}

using Npgsql;

namespace Homeserver.Keys;

/// <summary>The end-to-end key tables: reads for <c>/keys/query</c> and <c>/sync</c>, and the one-time and fallback
/// key writes (per-device data nobody else caches, so they need no stream row).</summary>
public sealed class KeyRepository(NpgsqlDataSource db)
{
    public sealed record DeviceKeys(string UserId, string DeviceId, string KeyJson, string? DisplayName);

    public sealed record CrossSigningKey(string UserId, string KeyType, string KeyJson);

    /// <summary>Keys of the users' existing devices (keys of deleted devices are never served).</summary>
    public async Task<List<DeviceKeys>> GetDeviceKeysAsync(IReadOnlyCollection<string> userIds)
    {
        await using var cmd = db.CreateCommand(
            """
            SELECT k.user_id, k.device_id, k.key_json, d.display_name
              FROM e2e_device_keys k JOIN devices d ON d.user_id = k.user_id AND d.device_id = k.device_id
             WHERE k.user_id = ANY($1)
             ORDER BY k.user_id, k.device_id
            """);
        cmd.Parameters.AddWithValue(userIds.ToArray());
        var list = new List<DeviceKeys>();
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync())
            list.Add(new DeviceKeys(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.IsDBNull(3) ? null : reader.GetString(3)));
        return list;
    }

    public async Task<List<CrossSigningKey>> GetCrossSigningKeysAsync(IReadOnlyCollection<string> userIds)
    {
        await using var cmd = db.CreateCommand("SELECT user_id, key_type, key_json FROM e2e_cross_signing_keys WHERE user_id = ANY($1)");
        cmd.Parameters.AddWithValue(userIds.ToArray());
        var list = new List<CrossSigningKey>();
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync()) list.Add(new CrossSigningKey(reader.GetString(0), reader.GetString(1), reader.GetString(2)));
        return list;
    }

    /// <summary>Uploaded signatures of the users' keys.</summary>
    public async Task<List<StoredSignature>> GetSignaturesAsync(IReadOnlyCollection<string> targetUserIds)
    {
        await using var cmd = db.CreateCommand(
            "SELECT signer_user_id, signer_key_id, target_user_id, target_id, signature FROM e2e_signatures WHERE target_user_id = ANY($1)");
        cmd.Parameters.AddWithValue(targetUserIds.ToArray());
        var list = new List<StoredSignature>();
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync())
            list.Add(new StoredSignature(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetString(4)));
        return list;
    }

    /// <summary>Stored one-time keys among <paramref name="keys"/> ((algorithm, key id) → JSON).</summary>
    public async Task<Dictionary<(string, string), string>> GetOneTimeKeysAsync(string userId, string deviceId, IReadOnlyCollection<(string Algorithm, string KeyId)> keys)
    {
        await using var cmd = db.CreateCommand(
            """
            SELECT algorithm, key_id, key_json FROM e2e_one_time_keys
             WHERE user_id = $1 AND device_id = $2 AND (algorithm, key_id) IN (SELECT * FROM unnest($3::text[], $4::text[]))
            """);
        cmd.Parameters.AddWithValue(userId);
        cmd.Parameters.AddWithValue(deviceId);
        cmd.Parameters.AddWithValue(keys.Select(k => k.Algorithm).ToArray());
        cmd.Parameters.AddWithValue(keys.Select(k => k.KeyId).ToArray());
        var found = new Dictionary<(string, string), string>();
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync()) found[(reader.GetString(0), reader.GetString(1))] = reader.GetString(2);
        return found;
    }

    /// <summary>Adds one-time keys and replaces fallback keys, in one transaction. A fallback key that is re-sent
    /// unchanged keeps its "used" mark; a new one is unused.</summary>
    public async Task StoreKeysAsync(string userId, string deviceId,
        IReadOnlyCollection<(string Algorithm, string KeyId, string Json)> oneTimeKeys,
        IReadOnlyCollection<(string Algorithm, string KeyId, string Json)> fallbackKeys)
    {
        if (oneTimeKeys.Count == 0 && fallbackKeys.Count == 0) return;
        await using var batch = db.CreateBatch();
        if (oneTimeKeys.Count > 0)
            batch.BatchCommands.Add(DeviceListChangePersister.Command(
                """
                INSERT INTO e2e_one_time_keys (user_id, device_id, algorithm, key_id, key_json)
                SELECT $1, $2, a, k, j FROM unnest($3::text[], $4::text[], $5::text[]) AS t(a, k, j)
                ON CONFLICT DO NOTHING
                """,
                userId, deviceId, oneTimeKeys.Select(k => k.Algorithm).ToArray(), oneTimeKeys.Select(k => k.KeyId).ToArray(),
                oneTimeKeys.Select(k => k.Json).ToArray()));
        foreach (var (algorithm, keyId, json) in fallbackKeys)
            batch.BatchCommands.Add(DeviceListChangePersister.Command(
                """
                INSERT INTO e2e_fallback_keys (user_id, device_id, algorithm, key_id, key_json, used) VALUES ($1, $2, $3, $4, $5, false)
                ON CONFLICT (user_id, device_id, algorithm) DO UPDATE SET
                    used = e2e_fallback_keys.used AND e2e_fallback_keys.key_id = EXCLUDED.key_id AND e2e_fallback_keys.key_json = EXCLUDED.key_json,
                    key_id = EXCLUDED.key_id, key_json = EXCLUDED.key_json
                """, userId, deviceId, algorithm, keyId, json));
        await batch.ExecuteNonQueryAsync();
    }

    /// <summary>Unclaimed one-time keys per algorithm (<c>signed_curve25519</c> always present, as in Synapse).</summary>
    public async Task<SortedDictionary<string, long>> CountOneTimeKeysAsync(string userId, string deviceId)
    {
        await using var cmd = db.CreateCommand(
            "SELECT algorithm, count(*) FROM e2e_one_time_keys WHERE user_id = $1 AND device_id = $2 GROUP BY algorithm");
        cmd.Parameters.AddWithValue(userId);
        cmd.Parameters.AddWithValue(deviceId);
        var counts = new SortedDictionary<string, long>(StringComparer.Ordinal) { ["signed_curve25519"] = 0 };
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync()) counts[reader.GetString(0)] = reader.GetInt64(1);
        return counts;
    }

    public async Task<List<string>> GetUnusedFallbackAlgorithmsAsync(string userId, string deviceId)
    {
        await using var cmd = db.CreateCommand(
            "SELECT algorithm FROM e2e_fallback_keys WHERE user_id = $1 AND device_id = $2 AND NOT used ORDER BY algorithm");
        cmd.Parameters.AddWithValue(userId);
        cmd.Parameters.AddWithValue(deviceId);
        var list = new List<string>();
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync()) list.Add(reader.GetString(0));
        return list;
    }

    /// <summary>Takes one one-time key of the algorithm, or else marks the fallback key used and returns it; null when
    /// the device has neither.</summary>
    public async Task<(string KeyId, string Json)?> ClaimAsync(string userId, string deviceId, string algorithm)
    {
        await using var batch = db.CreateBatch();
        batch.BatchCommands.Add(DeviceListChangePersister.Command(
            """
            DELETE FROM e2e_one_time_keys
             WHERE user_id = $1 AND device_id = $2 AND algorithm = $3 AND key_id = (
                   SELECT key_id FROM e2e_one_time_keys WHERE user_id = $1 AND device_id = $2 AND algorithm = $3
                    ORDER BY key_id LIMIT 1 FOR UPDATE SKIP LOCKED)
            RETURNING key_id, key_json
            """, userId, deviceId, algorithm));
        await using (var reader = await batch.ExecuteReaderAsync())
        {
            if (await reader.ReadAsync()) return (reader.GetString(0), reader.GetString(1));
        }
        await using var fallback = db.CreateCommand(
            "UPDATE e2e_fallback_keys SET used = true WHERE user_id = $1 AND device_id = $2 AND algorithm = $3 RETURNING key_id, key_json");
        fallback.Parameters.AddWithValue(userId);
        fallback.Parameters.AddWithValue(deviceId);
        fallback.Parameters.AddWithValue(algorithm);
        await using var fr = await fallback.ExecuteReaderAsync();
        return await fr.ReadAsync() ? (fr.GetString(0), fr.GetString(1)) : null;
    }

    /// <summary>Rooms the user is joined to now (from the database: the writer must not miss a room).</summary>
    public async Task<List<string>> GetJoinedRoomsAsync(string userId)
    {
        await using var cmd = db.CreateCommand("SELECT room_id FROM room_memberships WHERE user_id = $1 AND membership = 'join'");
        cmd.Parameters.AddWithValue(userId);
        var list = new List<string>();
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync()) list.Add(reader.GetString(0));
        return list;
    }

    public async Task<bool> DeviceExistsAsync(string userId, string deviceId)
    {
        await using var cmd = db.CreateCommand("SELECT 1 FROM devices WHERE user_id = $1 AND device_id = $2");
        cmd.Parameters.AddWithValue(userId);
        cmd.Parameters.AddWithValue(deviceId);
        return await cmd.ExecuteScalarAsync() is not null;
    }
}

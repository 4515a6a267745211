using System.Globalization;
using Homeserver.Errors;
using Npgsql;

namespace Homeserver.Keys;

/// <summary>
/// A user's key backup (see <see cref="IKeyBackupGrain"/>). Holds nothing in memory: every call is one transaction,
/// and writes lock the version's row first, so even two activations of the grain cannot interleave a replacement.
/// </summary>
public sealed class KeyBackupGrain(NpgsqlDataSource db) : Grain, IKeyBackupGrain
{
    private string UserId => this.GetPrimaryKeyString();

    public async Task<string> CreateVersionAsync(string algorithm, string authDataJson)
    {
        await using var cmd = db.CreateCommand(
            """
            INSERT INTO room_key_backup_versions (user_id, version, algorithm, auth_data)
            SELECT $1, coalesce(max(version), 0) + 1, $2, $3 FROM room_key_backup_versions WHERE user_id = $1
            RETURNING version
            """);
        cmd.Parameters.AddWithValue(UserId);
        cmd.Parameters.AddWithValue(algorithm);
        cmd.Parameters.AddWithValue(authDataJson);
        return ((long)(await cmd.ExecuteScalarAsync())!).ToString(CultureInfo.InvariantCulture);
    }

    public async Task<BackupVersionInfo?> GetVersionAsync(string? version)
    {
        long? number = null;
        if (version is not null)
        {
            if (!TryParse(version, out var parsed)) return null;
            number = parsed;
        }
        await using var cmd = db.CreateCommand(
            """
            SELECT v.version, v.algorithm, v.auth_data, v.etag,
                   (SELECT count(*) FROM room_key_backups k WHERE k.user_id = v.user_id AND k.version = v.version)
              FROM room_key_backup_versions v
             WHERE v.user_id = $1 AND NOT v.deleted AND ($2::bigint IS NULL OR v.version = $2)
             ORDER BY v.version DESC LIMIT 1
            """);
        cmd.Parameters.AddWithValue(UserId);
        cmd.Parameters.Add(new NpgsqlParameter { Value = (object?)number ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Bigint });
        await using var reader = await cmd.ExecuteReaderAsync();
        if (!await reader.ReadAsync()) return null;
        return new BackupVersionInfo(reader.GetInt64(0).ToString(CultureInfo.InvariantCulture), reader.GetString(1), reader.GetString(2),
            reader.GetInt64(4), reader.GetInt64(3).ToString(CultureInfo.InvariantCulture));
    }

    public async Task UpdateVersionAsync(string version, string algorithm, string authDataJson)
    {
        if (!TryParse(version, out var number)) throw UnknownVersion(version);
        // One round trip: the version's algorithm (null when there is no such version) and whether it was updated.
        await using var cmd = db.CreateCommand(
            """
            WITH target AS (SELECT algorithm FROM room_key_backup_versions WHERE user_id = $1 AND version = $2 AND NOT deleted FOR UPDATE),
                 updated AS (UPDATE room_key_backup_versions v SET auth_data = $4 FROM target
                              WHERE v.user_id = $1 AND v.version = $2 AND target.algorithm = $3 RETURNING 1)
            SELECT (SELECT algorithm FROM target), (SELECT count(*) FROM updated)
            """);
        cmd.Parameters.AddWithValue(UserId);
        cmd.Parameters.AddWithValue(number);
        cmd.Parameters.AddWithValue(algorithm);
        cmd.Parameters.AddWithValue(authDataJson);
        await using var reader = await cmd.ExecuteReaderAsync();
        await reader.ReadAsync();
        if (reader.IsDBNull(0)) throw UnknownVersion(version);
        if (reader.GetInt64(1) == 0) throw MatrixException.InvalidParam("The algorithm of a backup version cannot change");
    }

    public async Task DeleteVersionAsync(string version)
    {
        if (!TryParse(version, out var number)) throw UnknownVersion(version);
        await using var batch = db.CreateBatch();
        batch.BatchCommands.Add(new NpgsqlBatchCommand(
            "UPDATE room_key_backup_versions SET deleted = true WHERE user_id = $1 AND version = $2 AND NOT deleted")
        { Parameters = { new() { Value = UserId }, new() { Value = number } } });
        batch.BatchCommands.Add(new NpgsqlBatchCommand("DELETE FROM room_key_backups WHERE user_id = $1 AND version = $2")
        { Parameters = { new() { Value = UserId }, new() { Value = number } } });
        await batch.ExecuteNonQueryAsync();
        if (batch.BatchCommands[0].RecordsAffected == 0) throw UnknownVersion(version);
    }

    public async Task<BackupKeysResult> PutKeysAsync(string version, BackupKey[] keys)
    {
        await using var conn = await db.OpenConnectionAsync();
        await using var tx = await conn.BeginTransactionAsync();
        var number = await LockNewestAsync(conn, tx, version);

        var held = new Dictionary<(string Room, string Session), BackupKey>();
        await using (var cmd = new NpgsqlCommand(
            """
            SELECT room_id, session_id, first_message_index, forwarded_count, is_verified FROM room_key_backups
             WHERE user_id = $1 AND version = $2 AND (room_id, session_id) IN (SELECT * FROM unnest($3::text[], $4::text[]))
            """, conn, tx))
        {
            cmd.Parameters.AddWithValue(UserId);
            cmd.Parameters.AddWithValue(number);
            cmd.Parameters.AddWithValue(keys.Select(k => k.RoomId).ToArray());
            cmd.Parameters.AddWithValue(keys.Select(k => k.SessionId).ToArray());
            await using var reader = await cmd.ExecuteReaderAsync();
            while (await reader.ReadAsync())
                held[(reader.GetString(0), reader.GetString(1))] = new BackupKey(reader.GetString(0), reader.GetString(1),
                    reader.GetInt64(2), reader.GetInt64(3), reader.GetBoolean(4), "");
        }
        // The last of several uploads of one session in a request is what stays, if it beats what is held.
        var better = new Dictionary<(string, string), BackupKey>();
        foreach (var key in keys)
        {
            var id = (key.RoomId, key.SessionId);
            var current = better.TryGetValue(id, out var pending) ? pending : held.GetValueOrDefault(id);
            if (current is null || Replaces(key, current)) better[id] = key;
        }
        if (better.Count > 0)
        {
            await using var upsert = new NpgsqlCommand(
                """
                INSERT INTO room_key_backups (user_id, version, room_id, session_id, first_message_index, forwarded_count, is_verified, session_data)
                SELECT $1, $2, * FROM unnest($3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::boolean[], $8::text[])
                ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET
                    first_message_index = excluded.first_message_index, forwarded_count = excluded.forwarded_count,
                    is_verified = excluded.is_verified, session_data = excluded.session_data
                """, conn, tx);
            var values = better.Values.ToList();
            upsert.Parameters.AddWithValue(UserId);
            upsert.Parameters.AddWithValue(number);
            upsert.Parameters.AddWithValue(values.Select(k => k.RoomId).ToArray());
            upsert.Parameters.AddWithValue(values.Select(k => k.SessionId).ToArray());
            upsert.Parameters.AddWithValue(values.Select(k => k.FirstMessageIndex).ToArray());
            upsert.Parameters.AddWithValue(values.Select(k => k.ForwardedCount).ToArray());
            upsert.Parameters.AddWithValue(values.Select(k => k.IsVerified).ToArray());
            upsert.Parameters.AddWithValue(values.Select(k => k.SessionDataJson).ToArray());
            await upsert.ExecuteNonQueryAsync();
        }
        var result = await CountAndEtagAsync(conn, tx, number, bump: better.Count > 0);
        await tx.CommitAsync();
        return result;
    }

    public async Task<BackupKey[]> GetKeysAsync(string version, string? roomId, string? sessionId)
    {
        if (!TryParse(version, out var number)) throw UnknownVersion(version);
        // Whether the version exists and its keys, in one round trip (an unknown version is 404, a known one may be empty).
        await using var batch = db.CreateBatch();
        batch.BatchCommands.Add(new NpgsqlBatchCommand(
            "SELECT 1 FROM room_key_backup_versions WHERE user_id = $1 AND version = $2 AND NOT deleted")
        { Parameters = { new() { Value = UserId }, new() { Value = number } } });
        batch.BatchCommands.Add(new NpgsqlBatchCommand(
            """
            SELECT room_id, session_id, first_message_index, forwarded_count, is_verified, session_data FROM room_key_backups
             WHERE user_id = $1 AND version = $2 AND ($3::text IS NULL OR room_id = $3) AND ($4::text IS NULL OR session_id = $4)
             ORDER BY room_id, session_id
            """)
        {
            Parameters =
            {
                new() { Value = UserId }, new() { Value = number },
                new() { Value = (object?)roomId ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text },
                new() { Value = (object?)sessionId ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text },
            },
        });
        await using var reader = await batch.ExecuteReaderAsync();
        if (!await reader.ReadAsync()) throw UnknownVersion(version);
        await reader.NextResultAsync();
        var keys = new List<BackupKey>();
        while (await reader.ReadAsync())
            keys.Add(new BackupKey(reader.GetString(0), reader.GetString(1), reader.GetInt64(2), reader.GetInt64(3), reader.GetBoolean(4), reader.GetString(5)));
        return keys.ToArray();
    }

    public async Task<BackupKeysResult> DeleteKeysAsync(string version, string? roomId, string? sessionId)
    {
        if (!TryParse(version, out var number)) throw UnknownVersion(version);
        await using var conn = await db.OpenConnectionAsync();
        await using var tx = await conn.BeginTransactionAsync();
        await using (var lockVersion = new NpgsqlCommand(
            "SELECT 1 FROM room_key_backup_versions WHERE user_id = $1 AND version = $2 AND NOT deleted FOR UPDATE", conn, tx))
        {
            lockVersion.Parameters.AddWithValue(UserId);
            lockVersion.Parameters.AddWithValue(number);
            if (await lockVersion.ExecuteScalarAsync() is null) throw UnknownVersion(version);
        }
        int deleted;
        await using (var cmd = new NpgsqlCommand(
            """
            DELETE FROM room_key_backups
             WHERE user_id = $1 AND version = $2 AND ($3::text IS NULL OR room_id = $3) AND ($4::text IS NULL OR session_id = $4)
            """, conn, tx))
        {
            cmd.Parameters.AddWithValue(UserId);
            cmd.Parameters.AddWithValue(number);
            cmd.Parameters.Add(new NpgsqlParameter { Value = (object?)roomId ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
            cmd.Parameters.Add(new NpgsqlParameter { Value = (object?)sessionId ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
            deleted = await cmd.ExecuteNonQueryAsync();
        }
        var result = await CountAndEtagAsync(conn, tx, number, bump: deleted > 0);
        await tx.CommitAsync();
        return result;
    }

    /// <summary>Spec: a key replaces the one held if it is verified and that one is not; with the same verification,
    /// if its first message index is lower; with the same index, if it was forwarded fewer times.</summary>
    public static bool Replaces(BackupKey candidate, BackupKey current) =>
        candidate.IsVerified != current.IsVerified ? candidate.IsVerified
        : candidate.FirstMessageIndex != current.FirstMessageIndex ? candidate.FirstMessageIndex < current.FirstMessageIndex
        : candidate.ForwardedCount < current.ForwardedCount;

    /// <summary>Locks the newest version's row; refuses keys for any other (403 with the newest, as the spec asks).</summary>
    private async Task<long> LockNewestAsync(NpgsqlConnection conn, NpgsqlTransaction tx, string version)
    {
        await using var cmd = new NpgsqlCommand(
            """
            SELECT version FROM room_key_backup_versions WHERE user_id = $1 AND NOT deleted ORDER BY version DESC LIMIT 1 FOR UPDATE
            """, conn, tx);
        cmd.Parameters.AddWithValue(UserId);
        if (await cmd.ExecuteScalarAsync() is not long newest) throw UnknownVersion(version);
        if (!TryParse(version, out var number) || number != newest)
        {
            var current = newest.ToString(CultureInfo.InvariantCulture);
            throw new MatrixException(ErrorCodes.WrongRoomKeysVersion, "Wrong backup version", 403,
                $$"""{"current_version":"{{current}}"}""");
        }
        return number;
    }

    private async Task<BackupKeysResult> CountAndEtagAsync(NpgsqlConnection conn, NpgsqlTransaction tx, long version, bool bump)
    {
        await using var cmd = new NpgsqlCommand(
            """
            UPDATE room_key_backup_versions SET etag = etag + $3::int WHERE user_id = $1 AND version = $2
            RETURNING etag, (SELECT count(*) FROM room_key_backups WHERE user_id = $1 AND version = $2)
            """, conn, tx);
        cmd.Parameters.AddWithValue(UserId);
        cmd.Parameters.AddWithValue(version);
        cmd.Parameters.AddWithValue(bump ? 1 : 0);
        await using var reader = await cmd.ExecuteReaderAsync();
        await reader.ReadAsync();
        return new BackupKeysResult(reader.GetInt64(1), reader.GetInt64(0).ToString(CultureInfo.InvariantCulture));
    }

    private static bool TryParse(string version, out long number) =>
        long.TryParse(version, NumberStyles.None, CultureInfo.InvariantCulture, out number) && number > 0;

    private static MatrixException UnknownVersion(string version) => MatrixException.NotFound($"Unknown backup version {Quote.Short(version)}");
}

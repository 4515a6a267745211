using Homeserver.AccountData;
using Homeserver.Streams;
using Npgsql;

namespace Homeserver.Receipts;

/// <summary>The stream row: one user's latest receipt of one type (and thread) in a room. ThreadId "" = unthreaded.</summary>
public sealed record ReceiptRow(string RoomId, string ReceiptType, string UserId, string ThreadId, string EventId, long Ts);

/// <summary>The read side of receipts and the unread counts derived from them.</summary>
public sealed class ReceiptStore(NpgsqlDataSource db)
{
    /// <summary>The event of a user's current receipt, or null.</summary>
    public async Task<string?> GetEventAsync(string roomId, string receiptType, string userId, string threadId)
    {
        await using var cmd = db.CreateCommand(
            "SELECT event_id FROM receipts WHERE room_id = $1 AND receipt_type = $2 AND user_id = $3 AND thread_id = $4");
        cmd.Parameters.AddWithValue(roomId);
        cmd.Parameters.AddWithValue(receiptType);
        cmd.Parameters.AddWithValue(userId);
        cmd.Parameters.AddWithValue(threadId);
        return await cmd.ExecuteScalarAsync() as string;
    }

    /// <summary>Receipts of the rooms changed in (from, to] (from 0: all), private ones only of <paramref name="userId"/>.</summary>
    public async Task<IReadOnlyList<ReceiptRow>> GetChangesAsync(IReadOnlyList<string> roomIds, string userId, long from, long to)
    {
        await using var cmd = db.CreateCommand(
            """
            SELECT room_id, receipt_type, user_id, thread_id, event_id, ts FROM receipts
             WHERE room_id = ANY($1) AND stream_position > $2 AND stream_position <= $3
               AND (receipt_type <> 'm.read.private' OR user_id = $4)
             ORDER BY stream_position
            """);
        cmd.Parameters.AddWithValue(roomIds.ToArray());
        cmd.Parameters.AddWithValue(from);
        cmd.Parameters.AddWithValue(to);
        cmd.Parameters.AddWithValue(userId);
        var rows = new List<ReceiptRow>();
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync())
            rows.Add(new ReceiptRow(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetString(4), reader.GetInt64(5)));
        return rows;
    }

    /// <summary>
    /// Where a user's unread stretch in a room starts: the stream position of the later of their read receipt
    /// (public or private), their own last message and their membership. Only events after it can count as unread.
    /// </summary>
    public async Task<long> GetUnreadSinceAsync(string roomId, string userId)
    {
        await using var cmd = db.CreateCommand(
            """
            SELECT GREATEST(
                COALESCE((SELECT max(e.stream_position) FROM receipts r JOIN events e ON e.event_id = r.event_id
                           WHERE r.room_id = $1 AND r.user_id = $2 AND r.receipt_type IN ('m.read', 'm.read.private')), 0),
                COALESCE((SELECT max(stream_position) FROM events WHERE room_id = $1 AND sender = $2 AND state_key IS NULL), 0),
                COALESCE((SELECT stream_position FROM room_memberships WHERE room_id = $1 AND user_id = $2), 0))
            """);
        cmd.Parameters.AddWithValue(roomId);
        cmd.Parameters.AddWithValue(userId);
        return (long)(await cmd.ExecuteScalarAsync())!;
    }

    /// <summary>
    /// As <see cref="GetUnreadSinceAsync"/> for many rooms of one user, in one query, without the user's own last
    /// message: the caller finds it among the events it reads after this point. Looking it up here reads every event of
    /// every room (no index has the sender), which for an account in 300 rooms of 300 members is 90,000 rows.
    /// </summary>
    public async Task<Dictionary<string, long>> GetReadPointsManyAsync(IReadOnlyList<string> roomIds, string userId)
    {
        await using var cmd = db.CreateCommand(
            """
            SELECT q.room_id, GREATEST(
                COALESCE((SELECT max(e.stream_position) FROM receipts r JOIN events e ON e.event_id = r.event_id
                           WHERE r.room_id = q.room_id AND r.user_id = $2 AND r.receipt_type IN ('m.read', 'm.read.private')), 0),
                COALESCE((SELECT stream_position FROM room_memberships WHERE room_id = q.room_id AND user_id = $2), 0))
              FROM unnest($1::text[]) AS q(room_id)
            """);
        cmd.Parameters.AddWithValue(roomIds.ToArray());
        cmd.Parameters.AddWithValue(userId);
        var result = new Dictionary<string, long>(roomIds.Count, StringComparer.Ordinal);
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync()) result[reader.GetString(0)] = reader.GetInt64(1);
        return result;
    }

    /// <summary>
    /// Where the user's reading stands per thread of the room (spec "Threaded read receipts"): the point every thread
    /// starts from (their latest unthreaded read receipt, or their membership), and per thread (a root event id, or
    /// <c>main</c> for the main timeline) the later of their receipt in that thread and their own latest message in it.
    /// </summary>
    public async Task<(long Base, Dictionary<string, long> Threads)> GetThreadedUnreadPointsAsync(string roomId, string userId)
    {
        await using var batch = db.CreateBatch();
        batch.BatchCommands.Add(new NpgsqlBatchCommand(
            """
            SELECT GREATEST(
                COALESCE((SELECT max(e.stream_position) FROM receipts r JOIN events e ON e.event_id = r.event_id
                           WHERE r.room_id = $1 AND r.user_id = $2 AND r.thread_id = '' AND r.receipt_type IN ('m.read', 'm.read.private')), 0),
                COALESCE((SELECT stream_position FROM room_memberships WHERE room_id = $1 AND user_id = $2), 0))
            """) { Parameters = { new() { Value = roomId }, new() { Value = userId } } });
        batch.BatchCommands.Add(new NpgsqlBatchCommand(
            """
            SELECT r.thread_id, max(e.stream_position) FROM receipts r JOIN events e ON e.event_id = r.event_id
             WHERE r.room_id = $1 AND r.user_id = $2 AND r.thread_id <> '' AND r.receipt_type IN ('m.read', 'm.read.private')
             GROUP BY r.thread_id
            UNION ALL
            SELECT coalesce(t.relates_to_id, 'main'), max(e.stream_position)
              FROM events e LEFT JOIN event_relations t ON t.event_id = e.event_id AND t.rel_type = 'm.thread'
             WHERE e.room_id = $1 AND e.sender = $2 AND e.state_key IS NULL
             GROUP BY 1
            """) { Parameters = { new() { Value = roomId }, new() { Value = userId } } });
        await using var reader = await batch.ExecuteReaderAsync();
        await reader.ReadAsync();
        var basePoint = reader.GetInt64(0);
        await reader.NextResultAsync();
        var threads = new Dictionary<string, long>(StringComparer.Ordinal);
        while (await reader.ReadAsync())
        {
            var thread = reader.GetString(0);
            threads[thread] = Math.Max(threads.GetValueOrDefault(thread, basePoint), reader.GetInt64(1));
        }
        return (basePoint, threads);
    }

    /// <summary>The stream position up to which the user has read each of the rooms (their latest public or private
    /// read receipt); rooms without one are absent.</summary>
    public async Task<IReadOnlyDictionary<string, long>> GetReadUpToAsync(string userId, IReadOnlyList<string> roomIds)
    {
        await using var cmd = db.CreateCommand(
            """
            SELECT r.room_id, max(e.stream_position) FROM receipts r JOIN events e ON e.event_id = r.event_id
             WHERE r.user_id = $1 AND r.room_id = ANY($2) AND r.receipt_type IN ('m.read', 'm.read.private')
             GROUP BY r.room_id
            """);
        cmd.Parameters.AddWithValue(userId);
        cmd.Parameters.AddWithValue(roomIds.ToArray());
        var read = new Dictionary<string, long>(StringComparer.Ordinal);
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync()) read[reader.GetString(0)] = reader.GetInt64(1);
        return read;
    }
}

public sealed class ReceiptPersister : IStreamRowPersister
{
    public const string KindName = "receipts.set";
    public string Kind => KindName;

    public void AddCommands(NpgsqlBatch batch, StreamEntry entry)
    {
        var row = UserStreamSync.Read<ReceiptRow>(entry);
        batch.BatchCommands.Add(new NpgsqlBatchCommand(
            """
            INSERT INTO receipts (room_id, receipt_type, user_id, thread_id, event_id, ts, stream_position) VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (room_id, receipt_type, user_id, thread_id)
            DO UPDATE SET event_id = EXCLUDED.event_id, ts = EXCLUDED.ts, stream_position = EXCLUDED.stream_position
            """)
        {
            Parameters =
            {
                new() { Value = row.RoomId }, new() { Value = row.ReceiptType }, new() { Value = row.UserId }, new() { Value = row.ThreadId },
                new() { Value = row.EventId }, new() { Value = row.Ts }, new() { Value = entry.Position },
            }
        });
    }
}

using System.Text.Json.Nodes;
using Npgsql;

namespace Homeserver.Admin;

/// <summary>A query of <c>GET /_synapse/admin/v1/event_reports</c>: offset paging, newest first unless forwards, and
/// Synapse's filters (reporter and room by substring, the reported event's sender exactly).</summary>
public sealed record EventReportQuery(int From, int Limit, bool Forwards, string? UserId, string? RoomId, string? EventSenderUserId);

/// <summary>
/// Users' reports of events (<c>event_reports</c>, migration 0023) and of rooms (<c>room_reports</c>), answered in Synapse's shapes. Name and canonical
/// alias come from the room's current state; the sender from the event, so a report of a purged room keeps its row
/// and shows nulls for what went with the room (Synapse's inner join drops such reports; an operator keeps them here).
/// </summary>
public sealed class EventReportStore(NpgsqlDataSource db)
{
    private const string Select =
        """
        SELECT er.id, er.received_ts, er.room_id, er.event_id, er.user_id, er.reason, er.score, e.sender,
               (SELECT client_jsonb(ce.json) -> 'content' ->> 'alias' FROM room_current_state s JOIN events ce ON ce.event_id = s.event_id
                 WHERE s.room_id = er.room_id AND s.type = 'm.room.canonical_alias' AND s.state_key = '') AS canonical_alias,
               (SELECT client_jsonb(ne.json) -> 'content' ->> 'name' FROM room_current_state s JOIN events ne ON ne.event_id = s.event_id
                 WHERE s.room_id = er.room_id AND s.type = 'm.room.name' AND s.state_key = '') AS name,
               e.json
          FROM event_reports er LEFT JOIN events e ON e.event_id = er.event_id
        """;

    // Substring filters, as Synapse's LIKE '%x%' (its % and _ stay wildcards there too).
    private const string Filter =
        """
        WHERE ($1::text IS NULL OR er.user_id LIKE '%' || $1 || '%')
          AND ($2::text IS NULL OR er.room_id LIKE '%' || $2 || '%')
          AND ($3::text IS NULL OR e.sender = $3)
        """;

    public async Task<long> AddAsync(string roomId, string eventId, string userId, string? reason, long? score)
    {
        await using var cmd = db.CreateCommand(
            "INSERT INTO event_reports (received_ts, room_id, event_id, user_id, reason, score) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id");
        cmd.Parameters.AddWithValue(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        cmd.Parameters.AddWithValue(roomId);
        cmd.Parameters.AddWithValue(eventId);
        cmd.Parameters.AddWithValue(userId);
        cmd.Parameters.Add(new NpgsqlParameter { Value = (object?)reason ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        cmd.Parameters.Add(new NpgsqlParameter { Value = (object?)score ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Bigint });
        return (long)(await cmd.ExecuteScalarAsync())!;
    }

    /// <summary>A report of a whole room (<c>room_reports</c>); Synapse has no admin API for these yet, nor has this.</summary>
    public async Task AddRoomReportAsync(string roomId, string userId, string reason)
    {
        await using var cmd = db.CreateCommand("INSERT INTO room_reports (received_ts, room_id, user_id, reason) VALUES ($1, $2, $3, $4)");
        cmd.Parameters.AddWithValue(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        cmd.Parameters.AddWithValue(roomId);
        cmd.Parameters.AddWithValue(userId);
        cmd.Parameters.AddWithValue(reason);
        await cmd.ExecuteNonQueryAsync();
    }

    public async Task<(List<JsonObject> Reports, long Total)> ListAsync(EventReportQuery query)
    {
        await using var batch = db.CreateBatch();
        var direction = query.Forwards ? "ASC" : "DESC";
        var page = new NpgsqlBatchCommand($"{Select} {Filter} ORDER BY er.received_ts {direction}, er.id {direction} LIMIT $4 OFFSET $5");
        AddFilters(page, query);
        page.Parameters.Add(new NpgsqlParameter { Value = query.Limit });
        page.Parameters.Add(new NpgsqlParameter { Value = query.From });
        var count = new NpgsqlBatchCommand($"SELECT count(*) FROM event_reports er LEFT JOIN events e ON e.event_id = er.event_id {Filter}");
        AddFilters(count, query);
        batch.BatchCommands.Add(page);
        batch.BatchCommands.Add(count);
        await using var reader = await batch.ExecuteReaderAsync();
        var reports = new List<JsonObject>();
        while (await reader.ReadAsync()) reports.Add(Report(reader));
        await reader.NextResultAsync();
        await reader.ReadAsync();
        return (reports, reader.GetInt64(0));
    }

    /// <summary>One report with the reported event as stored (<c>event_json</c>), or null.</summary>
    public async Task<JsonObject?> GetAsync(long id)
    {
        await using var cmd = db.CreateCommand($"{Select} WHERE er.id = $1");
        cmd.Parameters.AddWithValue(id);
        await using var reader = await cmd.ExecuteReaderAsync();
        if (!await reader.ReadAsync()) return null;
        var report = Report(reader);
        report["event_json"] = reader.IsDBNull(10) ? null : JsonNode.Parse(reader.GetString(10));
        return report;
    }

    public async Task<bool> DeleteAsync(long id)
    {
        await using var cmd = db.CreateCommand("DELETE FROM event_reports WHERE id = $1");
        cmd.Parameters.AddWithValue(id);
        return await cmd.ExecuteNonQueryAsync() == 1;
    }

    private static void AddFilters(NpgsqlBatchCommand command, EventReportQuery query)
    {
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)query.UserId ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)query.RoomId ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)query.EventSenderUserId ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
    }

    private static JsonObject Report(NpgsqlDataReader reader) => new()
    {
        ["id"] = reader.GetInt64(0),
        ["received_ts"] = reader.GetInt64(1),
        ["room_id"] = reader.GetString(2),
        ["event_id"] = reader.GetString(3),
        ["user_id"] = reader.GetString(4),
        ["reason"] = reader.IsDBNull(5) ? null : reader.GetString(5),
        ["score"] = reader.IsDBNull(6) ? null : reader.GetInt64(6),
        ["sender"] = reader.IsDBNull(7) ? null : reader.GetString(7),
        ["canonical_alias"] = reader.IsDBNull(8) ? null : reader.GetString(8),
        ["name"] = reader.IsDBNull(9) ? null : reader.GetString(9),
    };
}

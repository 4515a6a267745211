using Homeserver.Matrix;
using System.Text.Json.Nodes;
using Npgsql;

namespace Homeserver.Rooms;

/// <summary>What the room grain reads straight from the database (never from caches: it is the writer).</summary>
public sealed class RoomWriteStore(NpgsqlDataSource db)
{
    public sealed record Loaded(string? RoomVersion, IReadOnlyList<string> State, JsonObject? LastEvent, long Depth);

    /// <summary>The room's version, current state and latest event (all null/empty when the room does not exist).</summary>
    public async Task<Loaded> LoadAsync(string roomId)
    {
        await using var batch = db.CreateBatch();
        batch.BatchCommands.Add(RoomEventPersister.Command("SELECT room_version FROM rooms WHERE room_id = $1", roomId));
        batch.BatchCommands.Add(RoomEventPersister.Command(
            "SELECT e.json FROM room_current_state s JOIN events e ON e.event_id = s.event_id WHERE s.room_id = $1", roomId));
        batch.BatchCommands.Add(RoomEventPersister.Command(
            "SELECT json, topological FROM events WHERE room_id = $1 ORDER BY topological DESC LIMIT 1", roomId));
        await using var reader = await batch.ExecuteReaderAsync();
        string? version = await reader.ReadAsync() ? reader.GetString(0) : null;
        await reader.NextResultAsync();
        // Kept as JSON: the room's state holds member events as bytes (RoomState.FromJson) and parses the few others.
        var state = new List<string>();
        while (await reader.ReadAsync()) state.Add(reader.GetString(0));
        await reader.NextResultAsync();
        JsonObject? last = null;
        long depth = 0;
        if (await reader.ReadAsync())
        {
            last = Parse(reader.GetString(0));
            depth = reader.GetInt64(1);
        }
        return new Loaded(version, state, last, depth);
    }

    /// <summary>The event a transaction id produced within <paramref name="lifetime"/>, with its stream position, or null.</summary>
    /// <summary>Which of the users are guest accounts.</summary>
    public async Task<IReadOnlyList<string>> GuestsAmongAsync(IReadOnlyCollection<string> userIds)
    {
        await using var cmd = db.CreateCommand("SELECT user_id FROM users WHERE is_guest AND user_id = ANY($1)");
        cmd.Parameters.AddWithValue(userIds.ToArray());
        var guests = new List<string>();
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync()) guests.Add(reader.GetString(0));
        return guests;
    }

    /// <summary>The event a device's transaction id produced in a room within <paramref name="lifetime"/> (the newest,
    /// as an expired id may have been sent again).</summary>
    public async Task<(string EventId, long Position)?> FindTransactionAsync(string userId, string deviceId, string roomId, string txnId, TimeSpan lifetime)
    {
        await using var cmd = db.CreateCommand(
            """
            SELECT event_id, stream_position FROM events
             WHERE room_id = $3 AND sender = $1 AND device_id = $2 AND txn_id = $4
               AND origin_server_ts >= (extract(epoch FROM now() - $5::interval) * 1000)::bigint
             ORDER BY stream_position DESC LIMIT 1
            """);
        cmd.Parameters.AddWithValue(userId);
        cmd.Parameters.AddWithValue(deviceId);
        cmd.Parameters.AddWithValue(roomId);
        cmd.Parameters.AddWithValue(txnId);
        cmd.Parameters.AddWithValue(lifetime);
        await using var reader = await cmd.ExecuteReaderAsync();
        return await reader.ReadAsync() ? (reader.GetString(0), reader.GetInt64(1)) : null;
    }

    /// <summary>A device's transaction ids in a room sent within <paramref name="lifetime"/>, oldest first, with the
    /// event and stream position each produced (an id sent again after it expired: the newest comes last).</summary>
    public async Task<List<(string TxnId, string EventId, long Position, DateTimeOffset CreatedAt)>> LiveTransactionsAsync(
        string userId, string deviceId, string roomId, TimeSpan lifetime)
    {
        await using var cmd = db.CreateCommand(
            """
            SELECT txn_id, event_id, stream_position, origin_server_ts FROM events
             WHERE room_id = $3 AND sender = $1 AND device_id = $2 AND txn_id IS NOT NULL
               AND origin_server_ts >= (extract(epoch FROM now() - $4::interval) * 1000)::bigint
             ORDER BY origin_server_ts, stream_position
            """);
        cmd.Parameters.AddWithValue(userId);
        cmd.Parameters.AddWithValue(deviceId);
        cmd.Parameters.AddWithValue(roomId);
        cmd.Parameters.AddWithValue(lifetime);
        var found = new List<(string, string, long, DateTimeOffset)>();
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync())
            found.Add((reader.GetString(0), reader.GetString(1), reader.GetInt64(2), DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(3))));
        return found;
    }

    /// <summary>An event of this room as stored (null when unknown or in another room), and whether it was redacted.</summary>
    /// <summary>An event by id wherever it is (the caller tells another room's event from a missing one).</summary>
    public async Task<(string RoomId, JsonObject Event, bool Redacted)?> GetEventAsync(string eventId)
    {
        if (!Identifiers.IsValidEventId(eventId)) return null;
        await using var cmd = db.CreateCommand("SELECT room_id, json, redacted_because IS NOT NULL FROM events WHERE event_id = $1");
        cmd.Parameters.AddWithValue(eventId);
        await using var reader = await cmd.ExecuteReaderAsync();
        return await reader.ReadAsync() ? (reader.GetString(0), Parse(reader.GetString(1)), reader.GetBoolean(2)) : null;
    }

    private static JsonObject Parse(string json) => (JsonObject)JsonNode.Parse(json)!;
}

using System.Text.Json;
using Npgsql;

namespace Homeserver.Admin;

/// <summary>What a deletion did so far (Synapse's <c>shutdown_room</c> object).</summary>
public sealed record ShutdownRoomResult(List<string> KickedUsers, List<string> FailedToKickUsers, List<string> LocalAliases, string? NewRoomId)
{
    public static ShutdownRoomResult Empty() => new([], [], [], null);
}

/// <summary>The <c>room_deletions</c> table (migration 0023): one row per deletion, rewritten as it goes.</summary>
public sealed class RoomDeletionStore(NpgsqlDataSource db)
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public const string Scheduled = "scheduled", Active = "active", Complete = "complete", Failed = "failed";

    /// <summary>A stored deletion with its request, for resuming it.</summary>
    public sealed record Stored(RoomDeletionStatus Status, RoomDeletionRequest Request);

    public async Task InsertAsync(string deleteId, string roomId, RoomDeletionRequest request)
    {
        await using var cmd = db.CreateCommand(
            "INSERT INTO room_deletions (delete_id, room_id, status, params, result) VALUES ($1, $2, $3, $4, $5)");
        cmd.Parameters.AddWithValue(deleteId);
        cmd.Parameters.AddWithValue(roomId);
        cmd.Parameters.AddWithValue(Scheduled);
        cmd.Parameters.AddWithValue(JsonSerializer.Serialize(request, Json));
        cmd.Parameters.AddWithValue(JsonSerializer.Serialize(ShutdownRoomResult.Empty(), Json));
        await cmd.ExecuteNonQueryAsync();
    }

    public async Task UpdateAsync(string deleteId, string status, ShutdownRoomResult result, string? error = null)
    {
        await using var cmd = db.CreateCommand(
            "UPDATE room_deletions SET status = $2, result = $3, error = $4, updated_at = now() WHERE delete_id = $1");
        cmd.Parameters.AddWithValue(deleteId);
        cmd.Parameters.AddWithValue(status);
        cmd.Parameters.AddWithValue(JsonSerializer.Serialize(result, Json));
        cmd.Parameters.Add(new NpgsqlParameter { Value = (object?)error ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        await cmd.ExecuteNonQueryAsync();
    }

    /// <summary>Every deletion of the room, oldest first, with its request.</summary>
    public async Task<List<Stored>> ForRoomAsync(string roomId)
    {
        await using var cmd = db.CreateCommand(
            "SELECT delete_id, room_id, status, result, error, params FROM room_deletions WHERE room_id = $1 ORDER BY created_at, delete_id");
        cmd.Parameters.AddWithValue(roomId);
        var list = new List<Stored>();
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync())
            list.Add(new Stored(
                new RoomDeletionStatus(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3),
                    reader.IsDBNull(4) ? null : reader.GetString(4)),
                JsonSerializer.Deserialize<RoomDeletionRequest>(reader.GetString(5), Json)!));
        return list;
    }

    /// <summary>The room a deletion id belongs to, or null for an unknown id.</summary>
    public async Task<string?> RoomOfAsync(string deleteId)
    {
        await using var cmd = db.CreateCommand("SELECT room_id FROM room_deletions WHERE delete_id = $1");
        cmd.Parameters.AddWithValue(deleteId);
        return await cmd.ExecuteScalarAsync() as string;
    }

    /// <summary>The local users with a membership of the room that a shutdown makes leave (join, invite, knock).</summary>
    public async Task<List<(string UserId, string Membership)>> LocalMembersAsync(string roomId, string serverName)
    {
        await using var cmd = db.CreateCommand(
            """
            SELECT user_id, membership FROM room_memberships
             WHERE room_id = $1 AND membership IN ('join', 'invite', 'knock')
               AND substring(user_id FROM position(':' IN user_id) + 1) = $2
             ORDER BY user_id
            """);
        cmd.Parameters.AddWithValue(roomId);
        cmd.Parameters.AddWithValue(serverName);
        var list = new List<(string, string)>();
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync()) list.Add((reader.GetString(0), reader.GetString(1)));
        return list;
    }

    public async Task<bool> RoomExistsAsync(string roomId)
    {
        await using var cmd = db.CreateCommand("SELECT 1 FROM rooms WHERE room_id = $1");
        cmd.Parameters.AddWithValue(roomId);
        return await cmd.ExecuteScalarAsync() is not null;
    }
}

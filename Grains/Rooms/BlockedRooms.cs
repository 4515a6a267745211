using Homeserver.Caches;
using Npgsql;

namespace Homeserver.Rooms;

/// <summary>
/// Rooms an admin blocked (<c>blocked_rooms</c>, Synapse's): nobody may join or be invited to them. Every join and
/// invite asks, so the answer is cached per silo (<see cref="CacheName"/>, room id → the blocking admin or null) and
/// invalidated through the <c>caches</c> stream when a block changes; a write returns once its invalidation committed,
/// and every silo applies that before its reader moves on.
/// </summary>
public sealed class BlockedRooms(NpgsqlDataSource db, CacheRegistry caches, CacheInvalidator invalidator)
{
    public const string CacheName = "rooms.blocked";

    /// <summary>Synapse's words (403 <c>M_UNKNOWN</c>) for a join or invite to a blocked room.</summary>
    public const string Message = "This room has been blocked on this server";

    private sealed record Entry(string? BlockedBy);

    /// <summary>The admin who blocked the room, or null when it is not blocked.</summary>
    public async Task<string?> BlockedByAsync(string roomId) =>
        (await caches.Get<Entry>(CacheName).GetOrLoadAsync(roomId, async id =>
        {
            await using var cmd = db.CreateCommand("SELECT user_id FROM blocked_rooms WHERE room_id = $1");
            cmd.Parameters.AddWithValue(id);
            return new Entry(await cmd.ExecuteScalarAsync() as string);
        })).BlockedBy;

    /// <summary>Blocks the room (again: the first admin stays recorded, as Synapse's upsert keeps the row). Returns
    /// the <c>caches</c> position of the invalidation (for read-your-writes).</summary>
    public async Task<long> BlockAsync(string roomId, string adminUserId)
    {
        await using (var cmd = db.CreateCommand(
                         "INSERT INTO blocked_rooms (room_id, user_id) VALUES ($1, $2) ON CONFLICT (room_id) DO NOTHING"))
        {
            cmd.Parameters.AddWithValue(roomId);
            cmd.Parameters.AddWithValue(adminUserId);
            await cmd.ExecuteNonQueryAsync();
        }
        return (await invalidator.InvalidateAsync(CacheName, roomId)).LastPosition;
    }

    public async Task<long> UnblockAsync(string roomId)
    {
        await using (var cmd = db.CreateCommand("DELETE FROM blocked_rooms WHERE room_id = $1"))
        {
            cmd.Parameters.AddWithValue(roomId);
            await cmd.ExecuteNonQueryAsync();
        }
        return (await invalidator.InvalidateAsync(CacheName, roomId)).LastPosition;
    }
}

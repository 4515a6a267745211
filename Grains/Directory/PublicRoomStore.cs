using System.Text.Json.Nodes;
using Npgsql;

namespace Homeserver.RoomDirectory;

/// <summary>One entry of <c>/publicRooms</c>.</summary>
public sealed record PublicRoom(
    string RoomId, string? Name, string? Topic, string? CanonicalAlias, long JoinedMembers, bool WorldReadable,
    bool GuestCanJoin, string JoinRule, string? AvatarUrl, string? RoomType);

/// <summary>
/// Directory visibility (<c>room_directory</c>, falling back to createRoom's <c>rooms.is_public</c>) and the public
/// room list built from the published rooms' current state.
/// </summary>
public sealed class PublicRoomStore(NpgsqlDataSource db)
{
    /// <summary>Null when the room does not exist.</summary>
    public async Task<bool?> IsPublishedAsync(string roomId)
    {
        await using var cmd = db.CreateCommand(
            "SELECT coalesce(d.is_public, r.is_public) FROM rooms r LEFT JOIN room_directory d ON d.room_id = r.room_id WHERE r.room_id = $1");
        cmd.Parameters.AddWithValue(roomId);
        return await cmd.ExecuteScalarAsync() is bool b ? b : null;
    }

    public async Task SetPublishedAsync(string roomId, bool isPublic)
    {
        await using var cmd = db.CreateCommand(
            "INSERT INTO room_directory (room_id, is_public) VALUES ($1, $2) ON CONFLICT (room_id) DO UPDATE SET is_public = EXCLUDED.is_public");
        cmd.Parameters.AddWithValue(roomId);
        cmd.Parameters.AddWithValue(isPublic);
        await cmd.ExecuteNonQueryAsync();
    }

    /// <summary>
    /// Every published room anyone could join or read (join rule public or knock, or world-readable history, as
    /// Synapse lists), largest first, then by room id.
    /// </summary>
    public async Task<List<PublicRoom>> ListAsync()
    {
        await using var cmd = db.CreateCommand(
            """
            WITH published AS (
                SELECT r.room_id FROM rooms r LEFT JOIN room_directory d ON d.room_id = r.room_id
                 WHERE coalesce(d.is_public, r.is_public)
            )
            SELECT p.room_id, s.type, e.json,
                   (SELECT count(*) FROM room_memberships m WHERE m.room_id = p.room_id AND m.membership = 'join')
              FROM published p
              LEFT JOIN room_current_state s ON s.room_id = p.room_id AND s.state_key = '' AND s.type = ANY($1)
              LEFT JOIN events e ON e.event_id = s.event_id
            """);
        cmd.Parameters.AddWithValue(new[]
        {
            "m.room.create", "m.room.name", "m.room.topic", "m.room.canonical_alias", "m.room.join_rules",
            "m.room.history_visibility", "m.room.guest_access", "m.room.avatar",
        });
        var rooms = new Dictionary<string, (Dictionary<string, JsonObject> State, long Joined)>(StringComparer.Ordinal);
        await using (var reader = await cmd.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                var roomId = reader.GetString(0);
                if (!rooms.TryGetValue(roomId, out var room)) rooms[roomId] = room = (new Dictionary<string, JsonObject>(StringComparer.Ordinal), reader.GetInt64(3));
                if (!reader.IsDBNull(1) && JsonNode.Parse(reader.GetString(2))?["content"] is JsonObject content)
                    room.State[reader.GetString(1)] = content;
            }
        }
        var list = new List<PublicRoom>();
        foreach (var (roomId, (state, joined)) in rooms)
        {
            string? Get(string type, string field) =>
                state.TryGetValue(type, out var c) && c[field] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
            var joinRule = Get("m.room.join_rules", "join_rule") ?? "invite";
            var worldReadable = Get("m.room.history_visibility", "history_visibility") == "world_readable";
            if (joinRule is not ("public" or "knock" or "knock_restricted") && !worldReadable) continue;
            list.Add(new PublicRoom(roomId, Get("m.room.name", "name"), Get("m.room.topic", "topic"),
                Get("m.room.canonical_alias", "alias"), joined, worldReadable,
                Get("m.room.guest_access", "guest_access") == "can_join", joinRule, Get("m.room.avatar", "url"),
                Get("m.room.create", "type")));
        }
        list.Sort((a, b) => a.JoinedMembers != b.JoinedMembers
            ? b.JoinedMembers.CompareTo(a.JoinedMembers)
            : string.CompareOrdinal(a.RoomId, b.RoomId));
        return list;
    }
}

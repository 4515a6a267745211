using Homeserver.Streams;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Homeserver.Keys;

/// <summary>
/// Whose device lists a user must refetch between two tokens (<c>/sync</c> <c>device_lists</c> and
/// <c>/keys/changes</c>): users sharing a room whose keys or devices changed, users who came to share a room, and
/// (<c>left</c>) users who no longer share any room with them.
/// </summary>
public sealed class DeviceListStore(NpgsqlDataSource db, EventShards shards)
{
    public sealed record Changes(IReadOnlyList<string> Changed, IReadOnlyList<string> Left);

    public async Task<Changes> GetChangesAsync(string userId, StreamToken from, StreamToken to)
    {
        // Key changes are filtered to room mates (and signer-only changes) in SQL; membership candidates below.
        var keyChanges = new HashSet<string>(StringComparer.Ordinal);
        var changed = new HashSet<string>(StringComparer.Ordinal);
        var left = new HashSet<string>(StringComparer.Ordinal);

        await using (var cmd = db.CreateCommand(
            """
            SELECT DISTINCT c.user_id FROM device_list_changes c
             WHERE c.position > $2 AND c.position <= $3 AND (c.only_for IS NULL OR c.only_for = $1)
               AND (c.user_id = $1 OR c.only_for = $1 OR EXISTS (
                    SELECT 1 FROM room_memberships a JOIN room_memberships b ON b.room_id = a.room_id
                     WHERE a.user_id = $1 AND a.membership = 'join' AND b.user_id = c.user_id AND b.membership = 'join'))
            """))
        {
            cmd.Parameters.AddWithValue(userId);
            cmd.Parameters.AddWithValue(from.Get(StreamNames.DeviceLists, DeviceListRows.Writer));
            cmd.Parameters.AddWithValue(to.Get(StreamNames.DeviceLists, DeviceListRows.Writer));
            await using var reader = await cmd.ExecuteReaderAsync();
            while (await reader.ReadAsync()) keyChanges.Add(reader.GetString(0));
        }

        // Membership changes in the requester's rooms: someone joining means a new device list to track, someone
        // leaving may mean one to stop tracking; the requester's own join or leave does that for a whole room.
        var writers = Enumerable.Range(0, shards.Current.WriterCount).ToArray();
        var ownJoins = new List<string>();
        var ownLeaves = new List<string>();
        await using (var cmd = db.CreateCommand(
            """
            SELECT h.room_id, h.user_id, h.membership FROM room_membership_history h
              JOIN unnest($2::integer[], $3::bigint[], $4::bigint[]) AS w(writer, f, t) ON h.stream_writer = w.writer
             WHERE h.stream_position > w.f AND h.stream_position <= w.t
               AND h.room_id IN (SELECT room_id FROM room_memberships WHERE user_id = $1)
             ORDER BY h.stream_writer, h.stream_position
            """))
        {
            cmd.Parameters.AddWithValue(userId);
            cmd.Parameters.AddWithValue(writers);
            cmd.Parameters.AddWithValue(writers.Select(w => from.Get(StreamNames.Events, w)).ToArray());
            cmd.Parameters.AddWithValue(writers.Select(w => to.Get(StreamNames.Events, w)).ToArray());
            await using var reader = await cmd.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                var (room, user, membership) = (reader.GetString(0), reader.GetString(1), reader.GetString(2));
                if (user == userId)
                {
                    if (membership == "join") ownJoins.Add(room);
                    else if (membership is "leave" or "ban") ownLeaves.Add(room);
                }
                else if (membership == "join") changed.Add(user);
                else if (membership is "leave" or "ban") left.Add(user);
            }
        }
        if (ownJoins.Count > 0) changed.UnionWith(await MembersAsync(ownJoins));
        if (ownLeaves.Count > 0) left.UnionWith(await MembersAsync(ownLeaves));

        // Only the candidates' sharing matters: a join into a room of 10,000 asks about the joiner, not all 10,000.
        var sharing = await SharingAsync(userId, changed.Union(left).Where(u => u != userId).ToArray());
        sharing.Add(userId);
        changed.IntersectWith(sharing);
        changed.UnionWith(keyChanges);
        left.ExceptWith(sharing);
        changed.ExceptWith(left);
        return new Changes(changed.Order(StringComparer.Ordinal).ToList(), left.Order(StringComparer.Ordinal).ToList());
    }

    /// <summary>Those of <paramref name="candidates"/> joined to any room the user is joined to.</summary>
    public async Task<HashSet<string>> SharingAsync(string userId, string[] candidates)
    {
        if (candidates.Length == 0) return new HashSet<string>(StringComparer.Ordinal);
        await using var cmd = db.CreateCommand(
            """
            SELECT DISTINCT b.user_id FROM room_memberships a JOIN room_memberships b ON b.room_id = a.room_id
             WHERE a.user_id = $1 AND a.membership = 'join' AND b.membership = 'join' AND b.user_id = ANY($2)
            """);
        cmd.Parameters.AddWithValue(userId);
        cmd.Parameters.AddWithValue(candidates);
        var set = new HashSet<string>(StringComparer.Ordinal);
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync()) set.Add(reader.GetString(0));
        return set;
    }

    private async Task<List<string>> MembersAsync(List<string> rooms)
    {
        await using var cmd = db.CreateCommand(
            "SELECT DISTINCT user_id FROM room_membership_history WHERE room_id = ANY($1) AND membership = 'join'");
        cmd.Parameters.AddWithValue(rooms.ToArray());
        var list = new List<string>();
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync()) list.Add(reader.GetString(0));
        return list;
    }
}

using Npgsql;

namespace Homeserver.Profile;

/// <summary>
/// <c>/user_directory/search</c> as Synapse answers it with <c>search_all_users: false</c>: the other users joined to a
/// room the searcher is joined to, and everyone joined to a room anyone may join or read (join rule <c>public</c> or
/// history visibility <c>world_readable</c>, Synapse's <c>users_in_public_rooms</c>); never a deactivated account.
/// Matched case-insensitively on user id and display name.
/// </summary>
/// <remarks>
/// Computed on each search from the tables the events writer keeps (memberships, and the room's join rule and
/// history visibility beside its row), so a change is seen by the next search on any silo once its event is written,
/// with nothing to invalidate.
/// </remarks>
public sealed class UserDirectoryStore(NpgsqlDataSource db)
{
    public sealed record Result(string UserId, string? DisplayName, string? AvatarUrl);

    public async Task<(List<Result> Results, bool Limited)> SearchAsync(string searcher, string term, int limit)
    {
        var pattern = "%" + term.ToLowerInvariant().Replace("\\", "\\\\").Replace("%", "\\%").Replace("_", "\\_") + "%";
        // A room mate is someone else: Synapse never pairs a user with themself in users_who_share_private_rooms, so
        // searchers find themselves only through a public room (SyTest searches its own name in a private room and
        // expects no hit). The public rooms' predicate is word for word that of the rooms_open_to_everyone index.
        // A deactivation sets the flag before it leaves the rooms, and one cut short may leave the user joined.
        await using var cmd = db.CreateCommand(
            """
            WITH visible AS (
                SELECT m.user_id FROM room_memberships mine
                  JOIN room_memberships m ON m.room_id = mine.room_id AND m.membership = 'join' AND m.user_id <> $1
                 WHERE mine.user_id = $1 AND mine.membership = 'join'
                UNION
                SELECT m.user_id FROM rooms r
                  JOIN room_memberships m ON m.room_id = r.room_id AND m.membership = 'join'
                 WHERE r.join_rule = 'public' OR r.history_visibility = 'world_readable'
            ), named AS (
                SELECT v.user_id,
                       CASE WHEN p.user_id IS NULL THEN split_part(substr(v.user_id, 2), ':', 1) ELSE p.displayname END AS displayname,
                       p.avatar_url
                  FROM visible v
                  LEFT JOIN profiles p ON p.user_id = v.user_id
                  LEFT JOIN users u ON u.user_id = v.user_id
                 WHERE u.deactivated IS NOT TRUE
            )
            SELECT user_id, displayname, avatar_url FROM named
             WHERE lower(user_id) LIKE $2 OR lower(coalesce(displayname, '')) LIKE $2
             ORDER BY lower(coalesce(displayname, user_id)), user_id
             LIMIT $3
            """);
        cmd.Parameters.AddWithValue(searcher);
        cmd.Parameters.AddWithValue(pattern);
        cmd.Parameters.AddWithValue(limit + 1);
        var list = new List<Result>();
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync())
            list.Add(new Result(reader.GetString(0), reader.IsDBNull(1) ? null : reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2)));
        var limited = list.Count > limit;
        return (list.Take(limit).ToList(), limited);
    }
}

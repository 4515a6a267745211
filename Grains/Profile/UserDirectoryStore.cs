using Npgsql;

namespace Homeserver.Profile;

/// <summary>
/// <c>/user_directory/search</c>: users who share a room with the searcher or are joined to a public room
/// (join rule <c>public</c>), matched case-insensitively on user id and display name.
/// </summary>
public sealed class UserDirectoryStore(NpgsqlDataSource db)
{
    public sealed record Result(string UserId, string? DisplayName, string? AvatarUrl);

    public async Task<(List<Result> Results, bool Limited)> SearchAsync(string searcher, string term, int limit)
    {
        var pattern = "%" + term.ToLowerInvariant().Replace("\\", "\\\\").Replace("%", "\\%").Replace("_", "\\_") + "%";
        await using var cmd = db.CreateCommand(
            """
            WITH visible AS (
                SELECT DISTINCT m.user_id FROM room_memberships m
                 WHERE m.membership = 'join' AND (
                       m.room_id IN (SELECT room_id FROM room_memberships WHERE user_id = $1 AND membership = 'join')
                    OR m.room_id IN (SELECT s.room_id FROM room_current_state s JOIN events e ON e.event_id = s.event_id
                                      WHERE s.type = 'm.room.join_rules' AND s.state_key = ''
                                        AND client_jsonb(e.json) -> 'content' ->> 'join_rule' = 'public'))
            ), named AS (
                SELECT v.user_id,
                       CASE WHEN p.user_id IS NULL THEN split_part(substr(v.user_id, 2), ':', 1) ELSE p.displayname END AS displayname,
                       p.avatar_url
                  FROM visible v LEFT JOIN profiles p ON p.user_id = v.user_id
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

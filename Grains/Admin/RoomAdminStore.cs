using System.Text.Json.Nodes;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Homeserver.Admin;

/// <summary>How the admin room list is ordered (Synapse's <c>RoomSortOrder</c>; <c>alphabetical</c> and
/// <c>size</c> are its deprecated names for <c>name</c> and <c>joined_members</c>).</summary>
public static class RoomSortOrder
{
    /// <summary>Each order's column and whether it runs ascending before <c>dir=b</c> flips it (Synapse's choices:
    /// counts and versions largest first, the rest alphabetically).</summary>
    public static readonly IReadOnlyDictionary<string, (string Column, bool Ascending)> Orders =
        new Dictionary<string, (string, bool)>(StringComparer.Ordinal)
        {
            ["name"] = ("name", true),
            ["alphabetical"] = ("name", true),
            ["canonical_alias"] = ("canonical_alias", true),
            ["joined_members"] = ("joined_members", false),
            ["size"] = ("joined_members", false),
            ["joined_local_members"] = ("joined_local_members", false),
            ["version"] = ("room_version", false),
            ["creator"] = ("creator", true),
            ["encryption"] = ("encryption", true),
            ["federatable"] = ("federatable", true),
            ["public"] = ("public", true),
            ["join_rules"] = ("join_rule", true),
            ["guest_access"] = ("guest_access", true),
            ["history_visibility"] = ("history_visibility", true),
            ["state_events"] = ("state_events", false),
        };
}

/// <summary>A query of the admin room list (<c>GET /_synapse/admin/v1/rooms</c>).</summary>
public sealed record RoomListQuery(int From, int Limit, string OrderBy, bool Backwards, string? SearchTerm, bool? PublicRooms, bool? EmptyRooms);

/// <summary>
/// The rooms of the admin API, read live from <c>rooms</c>, the current state and the memberships (Synapse keeps
/// <c>room_stats_state</c> for this; a list an operator pages through is rare enough to compute). Every field comes
/// from the room's current state events as Synapse's stats do: name, canonical alias, topic, avatar, encryption
/// algorithm, guest access, room type and federation flag from the create event, the tombstone's replacement.
/// </summary>
public sealed class RoomAdminStore(NpgsqlDataSource db, IOptions<HomeserverOptions> options)
{
    private static readonly string[] SummaryStateTypes =
    [
        "m.room.create", "m.room.name", "m.room.canonical_alias", "m.room.topic", "m.room.avatar", "m.room.encryption",
        "m.room.guest_access", "m.room.tombstone",
    ];

    // $1: this server's name (local members), $2: the state types above. Content is read with client_jsonb (the cast
    // that cannot fail on stored client text); ->> of a non-string value gives its JSON text, as Synapse stores it.
    private const string RoomsCte =
        """
        WITH info AS (
            SELECT r.room_id, r.room_version, r.creator, r.join_rule, r.history_visibility,
                   coalesce(d.is_public, r.is_public) AS public,
                   st.name, st.canonical_alias, st.topic, st.avatar, st.encryption, st.guest_access, st.room_type,
                   coalesce(st.federatable, true) AS federatable, coalesce(st.tombstoned, false) AS tombstoned, st.replacement_room,
                   (SELECT count(*) FROM room_memberships m WHERE m.room_id = r.room_id AND m.membership = 'join') AS joined_members,
                   (SELECT count(*) FROM room_memberships m WHERE m.room_id = r.room_id AND m.membership = 'join'
                       AND substring(m.user_id FROM position(':' IN m.user_id) + 1) = $1) AS joined_local_members,
                   (SELECT count(*) FROM room_current_state s WHERE s.room_id = r.room_id) AS state_events
              FROM rooms r
              LEFT JOIN room_directory d ON d.room_id = r.room_id
              CROSS JOIN LATERAL (
                  SELECT max(c ->> 'name') FILTER (WHERE type = 'm.room.name') AS name,
                         max(c ->> 'alias') FILTER (WHERE type = 'm.room.canonical_alias') AS canonical_alias,
                         max(c ->> 'topic') FILTER (WHERE type = 'm.room.topic') AS topic,
                         max(c ->> 'url') FILTER (WHERE type = 'm.room.avatar') AS avatar,
                         max(c ->> 'algorithm') FILTER (WHERE type = 'm.room.encryption') AS encryption,
                         max(c ->> 'guest_access') FILTER (WHERE type = 'm.room.guest_access') AS guest_access,
                         max(c ->> 'type') FILTER (WHERE type = 'm.room.create') AS room_type,
                         bool_and(coalesce(c -> 'm.federate' <> 'false'::jsonb, true)) FILTER (WHERE type = 'm.room.create') AS federatable,
                         bool_or(type = 'm.room.tombstone') AS tombstoned,
                         max(c ->> 'replacement_room') FILTER (WHERE type = 'm.room.tombstone') AS replacement_room
                    FROM (SELECT s.type, client_jsonb(e.json) -> 'content' AS c
                            FROM room_current_state s JOIN events e ON e.event_id = s.event_id
                           WHERE s.room_id = r.room_id AND s.state_key = '' AND s.type = ANY($2)) state
              ) st
        )
        """;

    private const string Columns =
        "room_id, name, canonical_alias, joined_members, joined_local_members, room_version, creator, encryption, " +
        "federatable, public, join_rule, guest_access, history_visibility, state_events, room_type, topic, avatar, tombstoned, replacement_room";

    // $3: the search term (null: none), $4/$5: its name and alias patterns, $6: public_rooms, $7: empty_rooms.
    private const string Filter =
        """
        WHERE ($3::text IS NULL OR lower(name) LIKE $4 OR lower(canonical_alias) LIKE $5 OR room_id = $3)
          AND ($6::boolean IS NULL OR public = $6)
          AND ($7::boolean IS NULL OR (joined_members = 0) = $7)
        """;

    /// <summary>One page of rooms and how many match in all.</summary>
    public async Task<(List<JsonObject> Rooms, long Total)> ListAsync(RoomListQuery query)
    {
        var (column, ascending) = RoomSortOrder.Orders[query.OrderBy];
        if (query.Backwards) ascending = !ascending;
        var direction = ascending ? "ASC" : "DESC";
        await using var batch = db.CreateBatch();
        // The order column comes from RoomSortOrder's fixed list, never from the request.
        batch.BatchCommands.Add(Command($"{RoomsCte} SELECT {Columns} FROM info {Filter} ORDER BY {column} {direction}, room_id {direction} LIMIT $8 OFFSET $9", query, includePage: true));
        batch.BatchCommands.Add(Command($"{RoomsCte} SELECT count(*) FROM info {Filter}", query, includePage: false));
        await using var reader = await batch.ExecuteReaderAsync();
        var rooms = new List<JsonObject>();
        while (await reader.ReadAsync()) rooms.Add(Summary(reader));
        await reader.NextResultAsync();
        await reader.ReadAsync();
        return (rooms, reader.GetInt64(0));
    }

    private NpgsqlBatchCommand Command(string sql, RoomListQuery query, bool includePage)
    {
        var command = new NpgsqlBatchCommand(sql);
        var term = query.SearchTerm?.ToLowerInvariant();
        command.Parameters.Add(new NpgsqlParameter { Value = options.Value.ServerName });
        command.Parameters.Add(new NpgsqlParameter { Value = SummaryStateTypes });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)query.SearchTerm ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = term is null ? DBNull.Value : $"%{term}%", NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = term is null ? DBNull.Value : $"#%{term}%:%", NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)query.PublicRooms ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Boolean });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)query.EmptyRooms ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Boolean });
        if (includePage)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = query.Limit });
            command.Parameters.Add(new NpgsqlParameter { Value = query.From });
        }
        return command;
    }

    /// <summary>The room details object of <c>GET /_synapse/admin/v1/rooms/{roomId}</c>, or null for an unknown room.</summary>
    public async Task<JsonObject?> GetAsync(string roomId)
    {
        await using var batch = db.CreateBatch();
        var room = new NpgsqlBatchCommand($"{RoomsCte} SELECT {Columns} FROM info WHERE room_id = $3");
        room.Parameters.Add(new NpgsqlParameter { Value = options.Value.ServerName });
        room.Parameters.Add(new NpgsqlParameter { Value = SummaryStateTypes });
        room.Parameters.Add(new NpgsqlParameter { Value = roomId });
        batch.BatchCommands.Add(room);
        // Devices exist only for local accounts, so this counts the local members' devices.
        var extra = new NpgsqlBatchCommand(
            """
            SELECT (SELECT count(*) FROM devices v JOIN room_memberships m ON m.user_id = v.user_id
                     WHERE m.room_id = $1 AND m.membership = 'join'),
                   coalesce((SELECT bool_and(forgotten) FROM room_memberships m
                              WHERE m.room_id = $1 AND substring(m.user_id FROM position(':' IN m.user_id) + 1) = $2), false)
            """);
        extra.Parameters.Add(new NpgsqlParameter { Value = roomId });
        extra.Parameters.Add(new NpgsqlParameter { Value = options.Value.ServerName });
        batch.BatchCommands.Add(extra);
        await using var reader = await batch.ExecuteReaderAsync();
        if (!await reader.ReadAsync()) return null;
        var details = Summary(reader);
        details["topic"] = Text(reader, 15);
        details["avatar"] = Text(reader, 16);
        details["tombstoned"] = reader.GetBoolean(17);
        details["replacement_room"] = Text(reader, 18);
        await reader.NextResultAsync();
        await reader.ReadAsync();
        details["joined_local_devices"] = reader.GetInt64(0);
        details["forgotten"] = reader.GetBoolean(1);
        return details;
    }

    /// <summary>The joined members of the room (Synapse's <c>get_users_in_room</c>), or null for an unknown room.</summary>
    public async Task<List<string>?> GetJoinedMembersAsync(string roomId)
    {
        await using var batch = db.CreateBatch();
        var exists = new NpgsqlBatchCommand("SELECT 1 FROM rooms WHERE room_id = $1");
        exists.Parameters.Add(new NpgsqlParameter { Value = roomId });
        var members = new NpgsqlBatchCommand("SELECT user_id FROM room_memberships WHERE room_id = $1 AND membership = 'join' ORDER BY user_id");
        members.Parameters.Add(new NpgsqlParameter { Value = roomId });
        batch.BatchCommands.Add(exists);
        batch.BatchCommands.Add(members);
        await using var reader = await batch.ExecuteReaderAsync();
        if (!await reader.ReadAsync()) return null;
        await reader.NextResultAsync();
        var list = new List<string>();
        while (await reader.ReadAsync()) list.Add(reader.GetString(0));
        return list;
    }

    private static JsonObject Summary(NpgsqlDataReader reader) => new()
    {
        ["room_id"] = reader.GetString(0),
        ["name"] = Text(reader, 1),
        ["canonical_alias"] = Text(reader, 2),
        ["joined_members"] = reader.GetInt64(3),
        ["joined_local_members"] = reader.GetInt64(4),
        ["version"] = reader.GetString(5),
        ["creator"] = reader.GetString(6),
        ["encryption"] = Text(reader, 7),
        ["federatable"] = reader.GetBoolean(8),
        ["public"] = reader.GetBoolean(9),
        ["join_rules"] = Text(reader, 10),
        ["guest_access"] = Text(reader, 11),
        ["history_visibility"] = Text(reader, 12),
        ["state_events"] = reader.GetInt64(13),
        ["room_type"] = Text(reader, 14),
    };

    private static string? Text(NpgsqlDataReader reader, int column) => reader.IsDBNull(column) ? null : reader.GetString(column);
}

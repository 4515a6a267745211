using Homeserver.Streams;
using Npgsql;

namespace Homeserver.Rooms;

/// <summary>
/// Writes an event's domain rows in the events writer's transaction: the event, the room's current state, the
/// membership tables, the room itself (create events; its join rule and history visibility on each change of them) and
/// the in-place redaction of a target.
/// </summary>
public sealed class RoomEventPersister : IStreamRowPersister
{
    public string Kind => RoomStreamRows.EventKind;

    public void AddCommands(NpgsqlBatch batch, StreamEntry entry) => AddCommands(batch, [entry]);

    /// <summary>
    /// The events of a whole run go in one multi-row statement (a group commit of messages is mostly this one; a
    /// send's transaction id is the row's own device_id and txn_id, migration 0028), so do the room's current state,
    /// memberships and membership history (a batch of joins is mostly these), then each row's other side effects in
    /// position order.
    /// </summary>
    public void AddCommands(NpgsqlBatch batch, IReadOnlyList<StreamEntry> run)
    {
        var rows = new RoomEventRow[run.Count];
        for (var i = 0; i < run.Count; i++) rows[i] = RoomStreamRows.Parse<RoomEventRow>(run[i].Payload);

        foreach (var row in rows)
            if (row.Room is { } room)
                batch.BatchCommands.Add(Command(
                    "INSERT INTO rooms (room_id, room_version, creator, is_public) VALUES ($1, $2, $3, $4)",
                    row.RoomId, room.RoomVersion, room.Creator, room.IsPublic));

        batch.BatchCommands.Add(Command(
            """
            INSERT INTO events (event_id, room_id, stream_writer, stream_position, topological, type, state_key, sender,
                                origin_server_ts, json, device_id, txn_id)
            SELECT * FROM unnest($1::text[], $2::text[], $3::integer[], $4::bigint[], $5::bigint[], $6::text[], $7::text[],
                                 $8::text[], $9::bigint[], $10::text[], $11::text[], $12::text[])
            """,
            rows.Select(r => r.EventId).ToArray(), rows.Select(r => r.RoomId).ToArray(), run.Select(e => e.Writer).ToArray(),
            run.Select(e => e.Position).ToArray(), rows.Select(r => r.Topological).ToArray(), rows.Select(r => r.Type).ToArray(),
            rows.Select(r => r.StateKey).ToArray(), rows.Select(r => r.Sender).ToArray(), rows.Select(r => r.OriginServerTs).ToArray(),
            rows.Select(r => r.Json).ToArray(), rows.Select(r => r.DeviceId).ToArray(), rows.Select(r => r.TxnId).ToArray()));

        AddStateAndMemberships(batch, run, rows);
        for (var i = 0; i < rows.Length; i++) AddSideEffects(batch, run[i], rows[i]);
    }

    /// <summary>
    /// The current state and memberships the run leaves, and its membership history. An upsert may not touch one row
    /// twice, so of several events for one state key only the last (in position order) is written, which is what
    /// writing them one after another would leave.
    /// </summary>
    private static void AddStateAndMemberships(NpgsqlBatch batch, IReadOnlyList<StreamEntry> run, RoomEventRow[] rows)
    {
        var lastState = new Dictionary<(string, string, string), int>();
        var lastMembership = new Dictionary<(string, string), int>();
        var history = new List<int>();
        for (var i = 0; i < rows.Length; i++)
        {
            if (rows[i].StateKey is not { } key) continue;
            lastState[(rows[i].RoomId, rows[i].Type, key)] = i;
            if (rows[i].Membership is null) continue;
            lastMembership[(rows[i].RoomId, key)] = i;
            history.Add(i);
        }
        if (lastState.Count > 0)
        {
            var state = lastState.Values.Order().Select(i => rows[i]).ToArray();
            batch.BatchCommands.Add(Command(
                """
                INSERT INTO room_current_state (room_id, type, state_key, event_id, membership)
                SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
                ON CONFLICT (room_id, type, state_key) DO UPDATE SET event_id = EXCLUDED.event_id, membership = EXCLUDED.membership
                """,
                state.Select(r => r.RoomId).ToArray(), state.Select(r => r.Type).ToArray(), state.Select(r => r.StateKey).ToArray(),
                state.Select(r => r.EventId).ToArray(), state.Select(r => r.Membership).ToArray()));
        }
        if (lastMembership.Count > 0)
        {
            var members = lastMembership.Values.Order().ToArray();
            batch.BatchCommands.Add(Command(
                """
                INSERT INTO room_memberships (room_id, user_id, membership, event_id, sender, stream_writer, stream_position, topological, forgotten)
                SELECT r, u, m, e, s, w, p, t, false
                  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::integer[], $7::bigint[], $8::bigint[]) AS x(r, u, m, e, s, w, p, t)
                ON CONFLICT (room_id, user_id) DO UPDATE SET
                    membership = EXCLUDED.membership, event_id = EXCLUDED.event_id, sender = EXCLUDED.sender,
                    stream_writer = EXCLUDED.stream_writer, stream_position = EXCLUDED.stream_position,
                    topological = EXCLUDED.topological, forgotten = false
                """,
                MembershipColumns(members, run, rows)));
            batch.BatchCommands.Add(Command(
                """
                INSERT INTO room_membership_history (room_id, user_id, membership, event_id, sender, stream_writer, stream_position, topological)
                SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::integer[], $7::bigint[], $8::bigint[])
                """,
                MembershipColumns(history.ToArray(), run, rows)));
        }
    }

    private static object?[] MembershipColumns(IReadOnlyList<int> at, IReadOnlyList<StreamEntry> run, RoomEventRow[] rows) =>
    [
        at.Select(i => rows[i].RoomId).ToArray(), at.Select(i => rows[i].StateKey).ToArray(), at.Select(i => rows[i].Membership).ToArray(),
        at.Select(i => rows[i].EventId).ToArray(), at.Select(i => rows[i].Sender).ToArray(), at.Select(i => run[i].Writer).ToArray(),
        at.Select(i => run[i].Position).ToArray(), at.Select(i => rows[i].Topological).ToArray(),
    ];

    private static void AddSideEffects(NpgsqlBatch batch, StreamEntry entry, RoomEventRow row)
    {

        // The user directory finds the rooms anyone may join or read from these columns (migration 0018). A redaction
        // keeps both keys, so only a new state event changes them.
        if (row.StateKey == "" && row.Type == "m.room.join_rules")
            batch.BatchCommands.Add(Command(
                "UPDATE rooms SET join_rule = $2::text WHERE room_id = $1", row.RoomId, RoomEventFormat.ContentString(row.Json, "join_rule")));
        if (row.StateKey == "" && row.Type == "m.room.history_visibility")
            batch.BatchCommands.Add(Command(
                "UPDATE rooms SET history_visibility = $2::text WHERE room_id = $1", row.RoomId, RoomEventFormat.ContentString(row.Json, "history_visibility")));

        if (row.Relation is { } relation)
            batch.BatchCommands.Add(Command(
                """
                INSERT INTO event_relations (event_id, relates_to_id, rel_type, aggregation_key, room_id, type, sender, topological)
                VALUES ($1, $2, $3, $4::text, $5, $6, $7, $8)
                """,
                row.EventId, relation.ParentId, relation.RelType, relation.Key, row.RoomId, row.Type, row.Sender, row.Topological));
        if (row.Search is { } search)
            batch.BatchCommands.Add(Command(
                """
                INSERT INTO event_search (event_id, room_id, key, vector, sender, type, topological, stream_position, origin_server_ts)
                VALUES ($1, $2, $3, to_tsvector('english', $4::text), $5, $6, $7, $8, $9)
                """,
                row.EventId, row.RoomId, search.Key, search.Text, row.Sender, row.Type, row.Topological, entry.Position, row.OriginServerTs));
        // A redacted event can no longer be found by what it said.
        if (row.Redacts is not null)
            batch.BatchCommands.Add(Command("DELETE FROM event_search WHERE event_id = $1", row.Redacts));
        // A redacted event leaves the relations it was part of (spec: redactions strip m.relates_to).
        if (row.Redacts is not null && row.RedactsRelationTo is not null)
            batch.BatchCommands.Add(Command("DELETE FROM event_relations WHERE event_id = $1", row.Redacts));

        // Only the first redaction rewrites the target: later ones are events of their own but change nothing.
        if (row.Redacts is not null && row.RedactedJson is not null)
            batch.BatchCommands.Add(Command(
                "UPDATE events SET json = $2, redacted_because = $3 WHERE event_id = $1 AND room_id = $4 AND redacted_because IS NULL",
                row.Redacts, row.RedactedJson, row.RedactedBecause ?? row.EventId, row.RoomId));
    }

    internal static NpgsqlBatchCommand Command(string sql, params object?[] values)
    {
        var command = new NpgsqlBatchCommand(sql);
        foreach (var v in values) command.Parameters.Add(new NpgsqlParameter { Value = v ?? DBNull.Value });
        return command;
    }
}

/// <summary>Marks a user's membership of a room as forgotten (it stays out of their archive until they rejoin).</summary>
public sealed class RoomForgetPersister : IStreamRowPersister
{
    public string Kind => RoomStreamRows.ForgetKind;

    public void AddCommands(NpgsqlBatch batch, StreamEntry entry)
    {
        var row = RoomStreamRows.Parse<ForgetRow>(entry.Payload);
        batch.BatchCommands.Add(RoomEventPersister.Command(
            "UPDATE room_memberships SET forgotten = true WHERE room_id = $1 AND user_id = $2 AND membership <> 'join'",
            row.RoomId, row.UserId));
    }
}

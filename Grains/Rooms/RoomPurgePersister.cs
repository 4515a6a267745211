using Homeserver.Streams;
using Npgsql;

namespace Homeserver.Rooms;

/// <summary>
/// Deletes a purged room's rows in the events writer's transaction, with the <c>room_purge</c> row that every silo's
/// reader applies (<see cref="RoomCacheHandler"/> drops the room's caches there), so no silo reads a half-deleted room
/// after passing it. Every table keyed by room id goes, as Synapse's purge deletes them (its list:
/// <c>purge_room_tables_with_room_id_column</c>): events, state, memberships and their history, transaction ids,
/// aliases, directory visibility, receipts, the members' room account data and tags, peeks, and the room itself.
/// Kept: event reports (Synapse keeps them), key backups (the user's own encrypted copies, whose counts and etags the
/// backup grain owns), and the <c>events</c> stream log rows, which readers treat as rows of a room that no longer
/// exists (the log prunes them after its retention).
/// </summary>
public sealed class RoomPurgePersister : IStreamRowPersister
{
    private static readonly string[] Tables =
    [
        "room_membership_history", "room_memberships", "room_current_state", "receipts", "account_data",
        "room_peeks", "room_aliases", "room_directory", "event_relations", "event_search", "events", "rooms",
    ];

    public string Kind => RoomStreamRows.PurgeKind;

    public void AddCommands(NpgsqlBatch batch, StreamEntry entry)
    {
        var row = RoomStreamRows.Parse<RoomPurgeRow>(entry.Payload);
        // The table names are this list's own constants, never input.
        foreach (var table in Tables)
            batch.BatchCommands.Add(RoomEventPersister.Command($"DELETE FROM {table} WHERE room_id = $1", row.RoomId));
    }
}

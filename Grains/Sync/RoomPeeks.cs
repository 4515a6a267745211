using Homeserver.Accounts;
using Homeserver.AccountData;
using Homeserver.Caches;
using Homeserver.Rooms;
using Homeserver.Streams;
using Npgsql;

namespace Homeserver.Sync;

/// <summary>
/// The rows of room peeking (MSC2753), on the <c>account_data</c> stream (per-user state with one writer, which /sync
/// already waits for), keyed by the user id so that they wake the user's long-polls: <c>room_peeks.start</c> and
/// <c>room_peeks.stop</c>, one device and room each.
/// </summary>
public static class RoomPeekRows
{
    public const string StartKind = "room_peeks.start";
    public const string StopKind = "room_peeks.stop";
}

public sealed record RoomPeekRow(string UserId, string DeviceId, string RoomId);

/// <summary>One device's peek of a room, and the <c>account_data/0</c> position it started at: the first /sync whose
/// window holds that position shows the room in full, as a newly joined room.</summary>
public sealed record RoomPeek(string DeviceId, string RoomId, long Position)
{
    public bool StartedIn(SyncContext context) =>
        context.Since is null || Position > context.Since.Get(StreamNames.AccountData, UserStreamSync.Writer);
}

/// <summary>
/// The read side of room peeks: every peek of a user, cached per silo by user id. The cache is dropped by
/// <see cref="RoomPeekCacheHandler"/> before the reader passes any row that changes the user's peeks (a peek, an
/// unpeek, a join, a device deleted), so /sync, which reads after the barrier, never asks the database for nothing.
/// </summary>
public sealed class RoomPeekStore(NpgsqlDataSource db, CacheRegistry caches)
{
    public const string Cache = "sync.room_peeks";

    /// <summary>The device's peeks that started at or before the sync's <c>To</c>: a peek committed but not yet applied
    /// here waits for the token that covers it, so it is shown in full exactly once.</summary>
    public async Task<IReadOnlyList<RoomPeek>> GetAsync(string userId, string deviceId, StreamToken to)
    {
        var all = await caches.Get<IReadOnlyList<RoomPeek>>(Cache).GetOrLoadAsync(userId, LoadAsync);
        if (all.Count == 0) return all;
        var upTo = to.Get(StreamNames.AccountData, UserStreamSync.Writer);
        return all.Where(p => p.DeviceId == deviceId && p.Position <= upTo).ToList();
    }

    private async Task<IReadOnlyList<RoomPeek>> LoadAsync(string userId)
    {
        await using var cmd = db.CreateCommand("SELECT device_id, room_id, stream_position FROM room_peeks WHERE user_id = $1");
        cmd.Parameters.AddWithValue(userId);
        var peeks = new List<RoomPeek>();
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync()) peeks.Add(new RoomPeek(reader.GetString(0), reader.GetString(1), reader.GetInt64(2)));
        return peeks;
    }
}

/// <summary>A peek starts; peeking again keeps the position of the first peek, so the room is not sent in full twice.</summary>
public sealed class RoomPeekStartPersister : IStreamRowPersister
{
    public string Kind => RoomPeekRows.StartKind;

    public void AddCommands(NpgsqlBatch batch, StreamEntry entry)
    {
        var row = UserStreamSync.Read<RoomPeekRow>(entry);
        batch.BatchCommands.Add(new NpgsqlBatchCommand(
            """
            INSERT INTO room_peeks (user_id, room_id, device_id, stream_position) VALUES ($1, $2, $3, $4)
            ON CONFLICT (user_id, room_id, device_id) DO NOTHING
            """)
        {
            Parameters = { new() { Value = row.UserId }, new() { Value = row.RoomId }, new() { Value = row.DeviceId }, new() { Value = entry.Position } }
        });
    }
}

public sealed class RoomPeekStopPersister : IStreamRowPersister
{
    public string Kind => RoomPeekRows.StopKind;

    public void AddCommands(NpgsqlBatch batch, StreamEntry entry)
    {
        var row = UserStreamSync.Read<RoomPeekRow>(entry);
        batch.BatchCommands.Add(new NpgsqlBatchCommand("DELETE FROM room_peeks WHERE user_id = $1 AND room_id = $2 AND device_id = $3")
        {
            Parameters = { new() { Value = row.UserId }, new() { Value = row.RoomId }, new() { Value = row.DeviceId } }
        });
    }
}

/// <summary>
/// Joining a room ends every peek of it by the user's devices (MSC2753): the room moves to <c>rooms.join</c> and does
/// not come back under <c>rooms.peek</c> after a leave. Runs with the membership notice rooms append after each
/// membership event, in the same transaction as the join.
/// </summary>
public sealed class RoomPeeksEndedByJoinPersister : IStreamRowPersister
{
    public string Kind => RoomStreamRows.MemberNoticeKind;

    public void AddCommands(NpgsqlBatch batch, StreamEntry entry) => AddCommands(batch, [entry]);

    public void AddCommands(NpgsqlBatch batch, IReadOnlyList<StreamEntry> run)
    {
        var joins = run.Select(e => RoomStreamRows.Parse<MemberNoticeRow>(e.Payload)).Where(n => n.Membership == "join").ToList();
        if (joins.Count == 0) return;
        batch.BatchCommands.Add(new NpgsqlBatchCommand(
            "DELETE FROM room_peeks WHERE (user_id, room_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))")
        {
            Parameters = { new() { Value = joins.Select(j => j.UserId).ToArray() }, new() { Value = joins.Select(j => j.RoomId).ToArray() } }
        });
    }
}

/// <summary>Drops a user's cached peeks before this silo's reader passes a row that changes them. Registered once per
/// stream those rows come on (<c>account_data</c>, <c>events</c>, <c>caches</c>); each row is keyed by the user.</summary>
public sealed class RoomPeekCacheHandler(string stream, CacheRegistry caches) : IStreamRowHandler
{
    public string Stream => stream;

    public void Handle(StreamEntry entry)
    {
        if (entry.Key is null) return;
        // A purge deletes the room's peeks, whoever held them: rare enough to drop every user's.
        if (entry.Kind == RoomStreamRows.PurgeKind)
        {
            caches.InvalidateAll(RoomPeekStore.Cache);
            return;
        }
        var changesPeeks = entry.Kind switch
        {
            RoomPeekRows.StartKind or RoomPeekRows.StopKind or DevicesDeletedPersister.KindName => true,
            RoomStreamRows.MemberNoticeKind => RoomStreamRows.Parse<MemberNoticeRow>(entry.Payload).Membership == "join",
            _ => false,
        };
        if (changesPeeks) caches.Invalidate(RoomPeekStore.Cache, entry.Key);
    }
}

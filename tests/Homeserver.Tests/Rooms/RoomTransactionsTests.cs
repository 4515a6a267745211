using System.Text.Json.Nodes;
using Homeserver.Rooms;
using Homeserver.Storage;
using Homeserver.Streams;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Homeserver.Tests.Rooms;

/// <summary>
/// Transaction ids are honoured for <see cref="HomeserverOptions.TransactionIdLifetime"/> without asking the database
/// on each send: beyond the latest <see cref="RoomTransactions.ExactPerDevice"/> per device a hash remembers them.
/// </summary>
public sealed class RoomTransactionsTests(RoomClusterFixture fx) : IClassFixture<RoomClusterFixture>
{
    private const string Alice = "@alice:localhost";

    private static SendEventCommand Message(string body, string txn, string device = "DEV") =>
        new(Alice, device, txn, "m.room.message", null, new JsonObject { ["msgtype"] = "m.text", ["body"] = body }.ToJsonString());

    private sealed class ManualClock(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now = now;
        public override DateTimeOffset GetUtcNow() => Now;
    }

    private NpgsqlDataSource Db => fx.Cluster.Silos[0].Get<NpgsqlDataSource>();

    private async Task<string> NewRoomAsync()
    {
        var roomId = RoomClusterFixture.NewRoomId();
        await fx.Room(roomId).CreateAsync(RoomClusterFixture.Create(Alice));
        return roomId;
    }

    [Fact]
    public async Task A_retry_older_than_the_exact_window_still_gets_its_first_event()
    {
        var roomId = await NewRoomAsync();
        var room = fx.Room(roomId);
        var first = new Dictionary<string, string>();
        var total = RoomTransactions.ExactPerDevice + 20;
        for (var i = 0; i < total; i++)
            first[$"t{i}"] = (await room.SendAsync(Message($"m{i}", $"t{i}"))).EventId!;

        // t0..t19 are only hashed in the grain's memory now; t1019 is exact.
        foreach (var txn in new[] { "t0", "t19", $"t{total - 1}" })
            Assert.Equal(first[txn], (await room.SendAsync(Message("retry", txn))).EventId);
        // A new activation's memory, loaded from the database, knows them all as well.
        var fresh = new RoomTransactions(fx.Cluster.Silos[1].Get<RoomWriteStore>(), roomId, TimeSpan.FromHours(24), TimeProvider.System);
        Assert.Equal(first["t0"], (await fresh.FindAsync(Alice, "DEV", "t0"))?.EventId);
        Assert.Equal(first[$"t{total - 1}"], (await fresh.FindAsync(Alice, "DEV", $"t{total - 1}"))?.EventId);
        Assert.Null(await fresh.FindAsync(Alice, "DEV", "never-sent"));
        Assert.Null(await fresh.FindAsync(Alice, "OTHER", "t0"));

        var events = await fx.Store(0).GetEventsByTopologicalAsync(roomId, long.MaxValue, Direction.Backwards, total + 50);
        Assert.Equal(total, events.Count(e => e.Type == "m.room.message"));
    }

    [Fact]
    public async Task Ids_expire_after_the_lifetime()
    {
        var roomId = await NewRoomAsync();
        var sent = await fx.Room(roomId).SendAsync(Message("hello", "expiring"));
        var clock = new ManualClock(DateTimeOffset.UtcNow);
        var memory = new RoomTransactions(fx.Cluster.Silos[0].Get<RoomWriteStore>(), roomId, TimeSpan.FromHours(1), clock);
        Assert.Equal(sent.EventId, (await memory.FindAsync(Alice, "DEV", "expiring"))?.EventId);

        clock.Now += TimeSpan.FromMinutes(59);
        Assert.Equal(sent.EventId, (await memory.FindAsync(Alice, "DEV", "expiring"))?.EventId);
        clock.Now += TimeSpan.FromMinutes(2);
        Assert.Null(await memory.FindAsync(Alice, "DEV", "expiring"));
    }

    [Fact]
    public async Task An_expired_id_not_yet_pruned_is_taken_over_by_a_new_send()
    {
        var roomId = await NewRoomAsync();
        // A row 25 hours old, as the pruner may not have reached yet, for a device the grain has not loaded.
        var old = await fx.Room(roomId).SendAsync(Message("old", "first", device: "YOUNG"));
        await using (var age = Db.CreateCommand(
            "INSERT INTO event_txn_ids (user_id, device_id, room_id, txn_id, event_id, created_at) VALUES ($1, 'AGED', $2, 'reused', $3, now() - interval '25 hours')"))
        {
            age.Parameters.AddWithValue(Alice);
            age.Parameters.AddWithValue(roomId);
            age.Parameters.AddWithValue(old.EventId!);
            await age.ExecuteNonQueryAsync();
        }

        var again = await fx.Room(roomId).SendAsync(Message("new", "reused", device: "AGED"));
        Assert.NotEqual(old.EventId, again.EventId);
        Assert.Equal(again.EventId, (await fx.Room(roomId).SendAsync(Message("new", "reused", device: "AGED"))).EventId);
        await using var mapped = Db.CreateCommand("SELECT event_id FROM event_txn_ids WHERE room_id = $1 AND txn_id = 'reused'");
        mapped.Parameters.AddWithValue(roomId);
        Assert.Equal(again.EventId, await mapped.ExecuteScalarAsync());
    }

    [Fact]
    public async Task The_pruner_deletes_only_expired_ids()
    {
        var roomId = await NewRoomAsync();
        await using (var seed = Db.CreateCommand(
            """
            INSERT INTO event_txn_ids (user_id, device_id, room_id, txn_id, event_id, created_at)
            SELECT '@p:localhost', 'PRUNE', $1, 'old' || i, '$old' || i, now() - interval '25 hours' FROM generate_series(1, 25) i
            UNION ALL SELECT '@p:localhost', 'PRUNE', $1, 'live', '$live', now() - interval '23 hours'
            """))
        {
            seed.Parameters.AddWithValue(roomId);
            await seed.ExecuteNonQueryAsync();
        }
        await using (var seed = Db.CreateCommand(
            """
            INSERT INTO to_device_txns (user_id, device_id, txn_id, created_at)
            VALUES ('@p:localhost', 'PRUNE', 'old', now() - interval '25 hours'), ('@p:localhost', 'PRUNE', 'live', now())
            """))
            await seed.ExecuteNonQueryAsync();

        // The silo's own pruners, as the events and to_device writers' housekeeping runs them.
        var pruners = fx.Cluster.Silos[0].Services.GetServices<IStreamHousekeeper>().OfType<TransactionIdPruner>().ToList();
        Assert.Equal(["events", "to_device"], pruners.Select(p => p.Stream).Order());
        foreach (var pruner in pruners) await pruner.RunAsync(CancellationToken.None);

        await using var left = Db.CreateCommand(
            """
            SELECT (SELECT string_agg(txn_id, ',') FROM event_txn_ids WHERE device_id = 'PRUNE'),
                   (SELECT string_agg(txn_id, ',') FROM to_device_txns WHERE device_id = 'PRUNE')
            """);
        await using var reader = await left.ExecuteReaderAsync();
        await reader.ReadAsync();
        Assert.Equal(("live", "live"), (reader.GetString(0), reader.GetString(1)));
    }
}

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
    public async Task An_expired_id_may_be_sent_again_and_its_newest_event_is_the_one_honoured()
    {
        var roomId = await NewRoomAsync();
        // An event sent 25 hours ago by a device the grain has not loaded (its row aged by hand: this room's grain
        // built it, so its depth and position stay real).
        var old = await fx.Room(roomId).SendAsync(Message("old", "first", device: "YOUNG"));
        await using (var age = Db.CreateCommand(
            """
            UPDATE events SET device_id = 'AGED', txn_id = 'reused', origin_server_ts = origin_server_ts - 25 * 3600 * 1000
             WHERE event_id = $1
            """))
        {
            age.Parameters.AddWithValue(old.EventId!);
            Assert.Equal(1, await age.ExecuteNonQueryAsync());
        }

        var again = await fx.Room(roomId).SendAsync(Message("new", "reused", device: "AGED"));
        Assert.NotEqual(old.EventId, again.EventId);
        Assert.Equal(again.EventId, (await fx.Room(roomId).SendAsync(Message("new", "reused", device: "AGED"))).EventId);
        // A fresh activation's load and the database's own look-up both find the new event, not the expired one.
        var store = fx.Cluster.Silos[0].Get<RoomWriteStore>();
        Assert.Equal(again.EventId, (await store.FindTransactionAsync(Alice, "AGED", roomId, "reused", TimeSpan.FromHours(24)))?.EventId);
        var memory = new RoomTransactions(store, roomId, TimeSpan.FromHours(24), TimeProvider.System);
        Assert.Equal(again.EventId, (await memory.FindAsync(Alice, "AGED", "reused"))?.EventId);
        Assert.Equal([again.EventId], (await store.LiveTransactionsAsync(Alice, "AGED", roomId, TimeSpan.FromHours(24))).Select(t => t.EventId));
    }

    [Fact]
    public async Task The_pruner_deletes_only_expired_to_device_ids()
    {
        await using (var seed = Db.CreateCommand(
            """
            INSERT INTO to_device_txns (user_id, device_id, txn_id, created_at)
            VALUES ('@p:localhost', 'PRUNE', 'old', now() - interval '25 hours'), ('@p:localhost', 'PRUNE', 'live', now())
            """))
            await seed.ExecuteNonQueryAsync();

        // The silo's own pruner, as the to_device writer's housekeeping runs it (room events keep their ids in the
        // event rows, which nothing prunes).
        var pruners = fx.Cluster.Silos[0].Services.GetServices<IStreamHousekeeper>().OfType<TransactionIdPruner>().ToList();
        Assert.Equal(["to_device"], pruners.Select(p => p.Stream));
        foreach (var pruner in pruners) await pruner.RunAsync(CancellationToken.None);

        await using var left = Db.CreateCommand("SELECT string_agg(txn_id, ',') FROM to_device_txns WHERE device_id = 'PRUNE'");
        Assert.Equal("live", await left.ExecuteScalarAsync());
    }
}

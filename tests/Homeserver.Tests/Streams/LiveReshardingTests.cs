using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Homeserver.Streams;
using Homeserver.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Homeserver.Tests.Streams;

/// <summary>
/// The number of <c>events</c> writers changed live through the admin API, twice, under load on a two-silo cluster
/// with a client long-polling throughout: no request fails, no event is lost or duplicated, each room's events stay in
/// the order they were sent (in /sync as in /messages), and tokens from before the reshards still work.
/// </summary>
public sealed class LiveReshardingTests(ITestOutputHelper output)
{
    private const string AdminLocalpart = "reshard-admin";

    [Fact]
    public async Task Resharding_the_events_stream_under_load_loses_nothing_and_keeps_every_room_in_order()
    {
        await using var cluster = await HomeserverTestCluster.StartAsync(2, new Dictionary<string, string?>
        {
            ["Homeserver:EventWriters"] = "2",
            ["Homeserver:AdminUsers:0"] = $"@{AdminLocalpart}:localhost",
        });
        var admin = await MatrixTestClient.RegisterAsync(cluster.Silos[0], AdminLocalpart);
        var alice = await MatrixTestClient.RegisterAsync(cluster.Silos[0]);
        var bob = await MatrixTestClient.RegisterAsync(cluster.Silos[1]);
        var rooms = new List<string>();
        for (var i = 0; i < 8; i++)
        {
            rooms.Add(await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" }));
            await bob.JoinAsync(rooms[^1]);
        }

        // Only an admin may reshard, and only to a sensible count.
        Assert.Equal(403, (await alice.PutAsync("/_homeserver/admin/v1/event_writers", new { writers = 4 })).StatusCode);
        Assert.Equal("M_INVALID_PARAM", (await admin.PutAsync("/_homeserver/admin/v1/event_writers", new { writers = 0 })).ErrCode);
        var before = (await admin.GetAsync("/_homeserver/admin/v1/event_writers")).EnsureSuccess();
        Assert.Equal(2, before["writers"].GetValue<int>());

        var oldSync = (await bob.SyncAsync()).NextBatch();
        var oldPage = (await bob.GetAsync($"{MatrixPaths.Room(rooms[0])}/messages?dir=b&limit=2")).EnsureSuccess()["end"].GetValue<string>();
        var oldPageNext = (await bob.GetAsync($"{MatrixPaths.Room(rooms[0])}/messages?dir=b&limit=5&from={oldPage}")).EnsureSuccess()["chunk"].AsArray()
            .Select(e => e!["event_id"]!.GetValue<string>()).ToList();

        var sent = new ConcurrentDictionary<string, ConcurrentQueue<string>>(); // room → bodies in acknowledged order
        var failures = new ConcurrentQueue<string>();
        using var stop = new CancellationTokenSource();
        var senders = rooms.Select((room, index) => Task.Run(async () =>
        {
            var acked = sent.GetOrAdd(room, _ => new ConcurrentQueue<string>());
            var client = alice.On(cluster.Silos[index % 2]);
            for (var n = 0; n < 100_000 && !stop.IsCancellationRequested; n++)
            {
                var body = $"{index}:{n:D6}";
                var r = await client.PutAsync($"{MatrixPaths.Room(room)}/send/m.room.message/t{n}",
                    new JsonObject { ["msgtype"] = "m.text", ["body"] = body });
                if (r.StatusCode == 200) acked.Enqueue(body);
                else failures.Enqueue($"{body}: {r.StatusCode} {r.Text}");
            }
        })).ToList();

        // Bob long-polls on the other silo throughout and records what each room's timeline shows, in order.
        var seen = new ConcurrentDictionary<string, List<string>>();
        var polls = 0;
        var sendersDone = false;
        bool CaughtUp() => sent.All(kv => (seen.GetValueOrDefault(kv.Key)?.Count ?? 0) >= kv.Value.Count);
        var poller = Task.Run(async () =>
        {
            var since = oldSync;
            var deadline = DateTime.UtcNow.AddMinutes(2);
            // Until the senders are done and everything they sent was shown (bounded).
            while (!(Volatile.Read(ref sendersDone) && CaughtUp()) && DateTime.UtcNow < deadline)
            {
                var r = await bob.GetAsync($"{MatrixPaths.V3}/sync?timeout=1000&since={Uri.EscapeDataString(since)}" +
                                           $"&filter={Uri.EscapeDataString("{\"room\":{\"timeline\":{\"limit\":1000}}}")}");
                if (r.StatusCode != 200) { failures.Enqueue($"sync: {r.StatusCode} {r.Text}"); continue; }
                polls++;
                foreach (var room in rooms)
                foreach (var e in r.RoomEvents(room, "timeline"))
                    if (e?["type"]?.GetValue<string>() == "m.room.message")
                        seen.GetOrAdd(room, _ => []).Add(e["content"]!["body"]!.GetValue<string>());
                since = r.NextBatch();
            }
        });

        await Task.Delay(1500);
        // Around the first reshard bob's silo loses every notification of the two old writers: it learns of their
        // rows late (its backstop reads them from the log), while the new writers' rows reach it at once. Only the
        // readers' barrier between generations keeps a moved room's new events from showing before its old ones.
        cluster.Silos[1].Get<StreamTestHooks>().DropNotification = a => a.Stream == StreamNames.Events && a.Writer < 2;
        var grown = (await admin.PutAsync("/_homeserver/admin/v1/event_writers", new { writers = 5 })).EnsureSuccess();
        Assert.Equal(5, grown["writers"].GetValue<int>());
        await Task.Delay(1000);
        cluster.Silos[1].Get<StreamTestHooks>().DropNotification = null;
        await Task.Delay(500);
        // The same around the second, for the writers it retires (their rooms move to the first three).
        cluster.Silos[1].Get<StreamTestHooks>().DropNotification = a => a.Stream == StreamNames.Events && a.Writer >= 3;
        var shrunk = (await admin.On(cluster.Silos[1]).PutAsync("/_homeserver/admin/v1/event_writers", new { writers = 3 })).EnsureSuccess();
        await Task.Delay(1000);
        cluster.Silos[1].Get<StreamTestHooks>().DropNotification = null;
        Assert.Equal(3, shrunk["writers"].GetValue<int>());
        Assert.Equal(2, shrunk["generation"].GetValue<int>());
        await Task.Delay(1500);
        stop.Cancel();
        await Task.WhenAll(senders);
        Volatile.Write(ref sendersDone, true);
        await poller;

        output.WriteLine($"sent {sent.Values.Sum(q => q.Count)}, failed {failures.Count}, syncs {polls}");
        Assert.True(failures.IsEmpty, string.Join("\n", failures.Take(10)));

        // The events went to more writers than the database started with.
        Assert.True(await ProcessCluster.CountAsync(cluster.Database, "SELECT count(DISTINCT stream_writer) FROM events") >= 3);
        foreach (var room in rooms)
        {
            var acked = sent[room].ToList();
            Assert.True(acked.Count > 10, $"{room}: only {acked.Count} sent");
            // /messages (newest first) holds each acknowledged event exactly once, in the order it was sent.
            var stored = await ProcessCluster.MessageBodiesAsync(alice, room);
            stored.Reverse();
            Assert.Equal(acked, stored);
            // Bob's long-poll showed them in the same order, without a repeat, and caught up with all of them.
            var shown = seen.GetValueOrDefault(room) ?? [];
            Assert.Equal(acked, shown);
        }

        // Tokens from before the reshards: an incremental sync from the old one carries the rooms' events, and
        // paginating from an old /messages token gives the same page as before.
        var fromOld = await bob.SyncAsync(oldSync, extra: $"&filter={Uri.EscapeDataString("{\"room\":{\"timeline\":{\"limit\":5}}}")}");
        Assert.All(rooms, room => Assert.NotEmpty(fromOld.RoomEvents(room, "timeline")));
        var page = (await bob.GetAsync($"{MatrixPaths.Room(rooms[0])}/messages?dir=b&limit=5&from={oldPage}")).EnsureSuccess();
        Assert.Equal(oldPageNext, page["chunk"].AsArray().Select(e => e!["event_id"]!.GetValue<string>()).ToList());

        // Every silo follows the writers of the new map.
        foreach (var silo in cluster.Silos)
            Assert.Equal(5, silo.Get<SiloStreamReader>().Writers().Count(w => w.Stream == StreamNames.Events));
    }
}

using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using Npgsql;
using Xunit.Abstractions;

namespace Homeserver.Tests.Hosting;

/// <summary>
/// Front ends without a silo (<c>Homeserver:Role=FrontEnd</c>, Orleans clients) in front of silos without HTTP, all
/// real OS processes started as the README starts them over one PostgreSQL.
/// </summary>
public sealed class FrontEndProcessTests(ITestOutputHelper output)
{
    private static readonly string[] FrontEndArgs = ["--Homeserver:Role=FrontEnd"];

    [Fact]
    public async Task A_front_end_without_a_silo_is_woken_by_push_and_reads_what_another_front_end_acknowledged()
    {
        var database = await TestPostgres.CreateDatabaseAsync();
        await using var db = NpgsqlDataSource.Create(database);
        using var silo = HomeserverProcess.Start("Silo", database, http: false);
        await ProcessCluster.WaitForActiveSilosAsync(db, 1, silo);
        // The front ends' backstop polls every 30 s: a long-poll answered within a second was woken by push.
        using var frontA = HomeserverProcess.Start("Api", database, http: true, [.. FrontEndArgs, "--Homeserver:ReaderBackstopPeriod=00:00:30"]);
        using var frontB = HomeserverProcess.Start("Api", database, http: true, [.. FrontEndArgs, "--Homeserver:ReaderBackstopPeriod=00:00:30"]);
        using var http = new HttpClient();
        await Task.WhenAll(frontA.WaitReadyAsync(http), frontB.WaitReadyAsync(http));
        // Front ends are clients, not members: the cluster is the one silo.
        Assert.Equal(1, await ProcessCluster.CountAsync(db, "SELECT count(*) FROM OrleansMembershipTable WHERE Status = 3"));

        var alice = await MatrixTestClient.RegisterAsync(TestSilo.OfProcess(frontA.Url));
        var bob = await MatrixTestClient.RegisterAsync(TestSilo.OfProcess(frontB.Url));
        var room = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        await bob.JoinAsync(room);

        var since = (await bob.SyncAsync()).NextBatch();
        var wakeUps = new List<double>();
        for (var i = 0; i < 5; i++)
        {
            var poll = bob.SyncAsync(since, timeoutMs: 20_000, extra: "&filter={\"room\":{\"timeline\":{\"limit\":5}}}");
            await Task.Delay(300);
            var sent = Stopwatch.GetTimestamp();
            var eventId = await alice.SendTextAsync(room, $"push {i}");
            var answer = await poll;
            wakeUps.Add(Stopwatch.GetElapsedTime(sent).TotalMilliseconds);
            Assert.Contains(answer.RoomEvents(room, "timeline"), e => e?["event_id"]?.GetValue<string>() == eventId);
            since = answer.NextBatch();
        }
        output.WriteLine($"long-poll on front end B woken {string.Join(", ", wakeUps.Select(w => $"{w:F0}"))} ms after the send through A");
        Assert.All(wakeUps, w => Assert.True(w < 5_000, $"woken after {w:F0} ms: not by push"));
        Assert.True(wakeUps.Order().ElementAt(2) < 1_000, $"median wake-up {wakeUps.Order().ElementAt(2):F0} ms");

        // Read-your-writes across front ends: what A acknowledged, B serves at once (B waits for its own reader).
        var aliceOnB = alice.On(TestSilo.OfProcess(frontB.Url));
        for (var i = 0; i < 20; i++)
        {
            var eventId = await alice.SendTextAsync(room, $"ryw {i}");
            var latest = (await aliceOnB.GetAsync($"{MatrixPaths.Room(room)}/messages?dir=b&limit=1")).EnsureSuccess();
            Assert.Equal(eventId, latest["chunk"][0]!["event_id"]!.GetValue<string>());
            (await aliceOnB.GetAsync($"{MatrixPaths.Room(room)}/event/{MatrixTestClient.Escape(eventId)}")).EnsureSuccess();
        }
    }

    [Fact]
    public async Task Killing_the_silo_that_holds_every_writer_fails_no_request_through_a_front_end_without_a_silo()
    {
        var database = await TestPostgres.CreateDatabaseAsync();
        await using var db = NpgsqlDataSource.Create(database);
        // The first silo takes every stream writer (rebalancing is off); the kill takes them all.
        using var doomed = HomeserverProcess.Start("Silo", database, http: false);
        await ProcessCluster.WaitForActiveSilosAsync(db, 1, doomed);
        await ProcessCluster.WaitForWritersAsync(db);
        using var survivor = HomeserverProcess.Start("Silo", database, http: false);
        await ProcessCluster.WaitForActiveSilosAsync(db, 2, doomed, survivor);
        using var frontEnd = HomeserverProcess.Start("Api", database, http: true, FrontEndArgs);
        using var http = new HttpClient();
        await frontEnd.WaitReadyAsync(http);

        var alice = await MatrixTestClient.RegisterAsync(TestSilo.OfProcess(frontEnd.Url));
        var rooms = new List<string>();
        for (var i = 0; i < 8; i++) rooms.Add(await alice.CreateRoomAsync());
        var writersBefore = await ProcessCluster.WritersOnSiloAsync(db, doomed.SiloPort);
        Assert.True(writersBefore > 0);

        var acked = new ConcurrentDictionary<string, (string Room, string Body)>();
        var failures = new ConcurrentQueue<string>();
        using var stop = new CancellationTokenSource();
        var senders = rooms.Select((room, index) => Task.Run(async () =>
        {
            for (var n = 0; n < 100_000 && !stop.IsCancellationRequested; n++)
            {
                var body = $"k{index}-{n}";
                var r = await alice.Http.PutJsonAsync($"{MatrixPaths.Room(room)}/send/m.room.message/{body}",
                    new JsonObject { ["msgtype"] = "m.text", ["body"] = body });
                if (r.StatusCode == 200) acked[r["event_id"].GetValue<string>()] = (room, body);
                else failures.Enqueue($"{body}: {r.StatusCode} {r.Text}");
            }
        })).ToList();

        await Task.Delay(TimeSpan.FromSeconds(2));
        var killedAt = DateTime.UtcNow;
        doomed.Kill9();
        await Task.Delay(TimeSpan.FromSeconds(8));
        stop.Cancel();
        await Task.WhenAll(senders);

        output.WriteLine($"acknowledged {acked.Count}, failed {failures.Count}");
        Assert.True(failures.IsEmpty, $"{failures.Count} failed requests:\n{string.Join("\n", failures.Take(10))}\n" +
            string.Join("\n", frontEnd.Output.Split('\n').Where(l => l.Contains("Unavailable") || l.Contains("Exception")).Take(20)));
        // Every writer lives on the survivor now, and each was active again within 5 s of the kill.
        Assert.Equal(0, await ProcessCluster.WritersOnSiloAsync(db, doomed.SiloPort));
        await using (var cmd = db.CreateCommand("SELECT max(activated_at) FROM stream_writers"))
        {
            var lastActivated = ((DateTime)(await cmd.ExecuteScalarAsync())!).ToUniversalTime();
            output.WriteLine($"the last writer was active again {(lastActivated - killedAt).TotalSeconds:F1} s after the kill");
            Assert.True(lastActivated - killedAt < TimeSpan.FromSeconds(5), $"a writer took {(lastActivated - killedAt).TotalSeconds:F1} s");
        }
        await ProcessCluster.AssertEveryAcknowledgedMessageOnceAsync(alice, rooms, acked);
    }

    [Fact]
    public async Task A_rolling_restart_of_every_silo_and_front_end_fails_no_request_and_loses_nothing()
    {
        var database = await TestPostgres.CreateDatabaseAsync();
        await using var db = NpgsqlDataSource.Create(database);
        var silos = new[] { HomeserverProcess.Start("Silo", database, http: false), HomeserverProcess.Start("Silo", database, http: false) };
        var frontEnds = new HomeserverProcess[2];
        var everyProcess = new ConcurrentBag<HomeserverProcess>(silos);
        try
        {
            await ProcessCluster.WaitForActiveSilosAsync(db, 2, silos);
            using var http = new HttpClient();
            for (var i = 0; i < frontEnds.Length; i++) everyProcess.Add(frontEnds[i] = HomeserverProcess.Start("Api", database, http: true, FrontEndArgs));
            await Task.WhenAll(frontEnds.Select(f => f.WaitReadyAsync(http)));

            var alice = await MatrixTestClient.RegisterAsync(TestSilo.OfProcess(frontEnds[0].Url));
            var rooms = new List<string>();
            for (var i = 0; i < 6; i++) rooms.Add(await alice.CreateRoomAsync());
            var client = new BalancedClient(alice.AccessToken, frontEnds.Select(f => f.Url).ToArray());

            var acked = new ConcurrentDictionary<string, (string Room, string Body)>();
            var failures = new ConcurrentQueue<string>();
            var syncs = 0;
            using var stop = new CancellationTokenSource();
            var senders = rooms.Select((room, index) => Task.Run(async () =>
            {
                for (var n = 0; n < 100_000 && !stop.IsCancellationRequested; n++)
                {
                    var body = $"r{index}-{n}";
                    var r = await client.SendAsync(HttpMethod.Put, $"{MatrixPaths.Room(room)}/send/m.room.message/{body}",
                        new JsonObject { ["msgtype"] = "m.text", ["body"] = body });
                    if (r.StatusCode == 200) acked[r["event_id"].GetValue<string>()] = (room, body);
                    else failures.Enqueue($"send {body}: {r.StatusCode} {r.Text}");
                }
            })).ToList();
            // Two clients long-polling throughout, each request to whichever front end the balancer picks.
            var pollers = Enumerable.Range(0, 2).Select(_ => Task.Run(async () =>
            {
                string? since = null;
                for (var n = 0; n < 100_000 && !stop.IsCancellationRequested; n++)
                {
                    var r = await client.SendAsync(HttpMethod.Get,
                        $"{MatrixPaths.V3}/sync?timeout=2000&filter={Uri.EscapeDataString("{\"room\":{\"timeline\":{\"limit\":1}}}")}" +
                        (since is null ? "" : $"&since={Uri.EscapeDataString(since)}"));
                    if (r.StatusCode == 200)
                    {
                        since = r.NextBatch();
                        Interlocked.Increment(ref syncs);
                    }
                    else failures.Enqueue($"sync: {r.StatusCode} {r.Text}");
                }
            })).ToList();

            await Task.Delay(TimeSpan.FromSeconds(2));
            for (var i = 0; i < silos.Length; i++)
            {
                var old = silos[i];
                await Task.Run(old.Terminate); // SIGTERM: the silo hands its grains and writers over and leaves
                output.WriteLine($"silo {i} stopped, {acked.Count} acknowledged");
                everyProcess.Add(silos[i] = HomeserverProcess.Start("Silo", database, http: false));
                await ProcessCluster.WaitForSiloActiveAsync(db, silos[i]);
                // Front ends learn a new gateway at their next read of the membership table: wait for it before the
                // next silo goes, as an operator would.
                await Task.Delay(Homeserver.Hosting.HomeserverHostingExtensions.GatewayListRefreshPeriod + TimeSpan.FromSeconds(1));
            }
            for (var i = 0; i < frontEnds.Length; i++)
            {
                var old = frontEnds[i];
                await Task.Run(old.Terminate); // SIGTERM: stops accepting, finishes in-flight requests, ends long-polls
                output.WriteLine($"front end {i} stopped, {acked.Count} acknowledged");
                everyProcess.Add(frontEnds[i] = HomeserverProcess.Start("Api", database, http: true, FrontEndArgs));
                await frontEnds[i].WaitReadyAsync(http);
                client.Replace(old.Url, frontEnds[i].Url);
            }
            var ackedBeforeLast = acked.Count;
            await Task.Delay(TimeSpan.FromSeconds(2));
            stop.Cancel();
            await Task.WhenAll(senders.Concat(pollers));

            output.WriteLine($"acknowledged {acked.Count}, syncs {syncs}, failed {failures.Count}");
            Assert.True(failures.IsEmpty, $"{failures.Count} failed requests:\n{string.Join("\n", failures.Take(10))}");
            Assert.True(acked.Count > ackedBeforeLast, "sending did not go on after the restarts");
            await ProcessCluster.AssertEveryAcknowledgedMessageOnceAsync(alice.On(TestSilo.OfProcess(frontEnds[1].Url)), rooms, acked);
            // No position was handed out twice and the two front ends' readers agree on where every stream is.
            Assert.Equal(0, await ProcessCluster.CountAsync(db,
                "SELECT count(*) FROM (SELECT stream, position FROM stream_log GROUP BY stream, position HAVING count(*) > 1) d"));
            // (A sync may itself write presence, so ask both until they answer the same.)
            string[] tokens = [];
            for (var attempt = 0; attempt < 50; attempt++)
            {
                tokens = await Task.WhenAll(frontEnds.Select(async f =>
                    (await alice.On(TestSilo.OfProcess(f.Url)).SyncAsync(extra: "&set_presence=offline")).NextBatch()));
                if (tokens[0] == tokens[1]) break;
                await Task.Delay(100);
            }
            Assert.Equal(tokens[0], tokens[1]);
        }
        finally
        {
            foreach (var p in everyProcess) p.Dispose();
        }
    }
}

using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Homeserver.Hosting;
using Homeserver.Tests.Infrastructure;
using Npgsql;
using Xunit.Abstractions;

namespace Homeserver.Tests.Hosting;

/// <summary>
/// A cluster of real OS processes started as the README starts them (a front end with its silo, and a silo without
/// HTTP, finding each other through the database), under load from clients that send with transaction ids, and the
/// second silo lost (<c>kill -9</c>, or SIGTERM as in a rolling restart): no client request fails, and every
/// acknowledged message is in its room exactly once afterwards.
/// </summary>
public sealed class ProcessFailoverTests(ITestOutputHelper output)
{
    private const int Senders = 8;
    private static readonly TimeSpan LoadBeforeKill = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan LoadAfterKill = TimeSpan.FromSeconds(10);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Losing_a_silo_fails_no_idempotent_request_and_loses_no_acknowledged_message(bool kill9)
    {
        var database = await TestPostgres.CreateDatabaseAsync();
        await using var db = NpgsqlDataSource.Create(database);
        // The silo without HTTP starts first, so the stream writers activate there (they stay: rebalancing is off):
        // the kill takes every writer with it, and room grains are spread over both.
        using var silo = HomeserverProcess.Start("Silo", database, http: false);
        await ProcessCluster.WaitForActiveSilosAsync(db, 1, silo);
        await ProcessCluster.WaitForWritersAsync(db);
        using var frontEnd = HomeserverProcess.Start("Api", database, http: true);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        await frontEnd.WaitReadyAsync(http);
        await ProcessCluster.WaitForActiveSilosAsync(db, 2, silo);

        // Enough rooms (and so writers and room grains) that some live on the silo about to die.
        var alice = await MatrixTestClient.RegisterAsync(TestSilo.OfProcess(frontEnd.Url));
        var rooms = new List<string>();
        for (var i = 0; i < Senders; i++) rooms.Add(await alice.CreateRoomAsync());
        var onDyingSilo = await ProcessCluster.WritersOnSiloAsync(db, silo.SiloPort);
        output.WriteLine($"stream writers on the silo to be killed: {onDyingSilo}");
        Assert.True(onDyingSilo > 0, "no stream writer lives on the silo to be killed");

        var acked = new ConcurrentDictionary<string, (string Room, string Body)>();
        var failures = new ConcurrentQueue<string>();
        var latencies = new ConcurrentBag<double>();
        using var stop = new CancellationTokenSource();
        var senders = rooms.Select((room, index) => Task.Run(async () =>
        {
            for (var n = 0; n < 100_000 && !stop.IsCancellationRequested; n++)
            {
                var body = $"s{index}-{n}";
                var started = Stopwatch.GetTimestamp();
                var r = await alice.Http.PutJsonAsync($"{MatrixPaths.Room(room)}/send/m.room.message/{body}",
                    new JsonObject { ["msgtype"] = "m.text", ["body"] = body });
                latencies.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                if (r.StatusCode == 200) acked[r["event_id"].GetValue<string>()] = (room, body);
                else failures.Enqueue($"{body}: {r.StatusCode} {r.Text}");
            }
        })).ToList();

        await Task.Delay(LoadBeforeKill);
        var ackedBeforeKill = acked.Count;
        if (kill9) silo.Kill9();
        else silo.Terminate(); // a graceful stop, as in a rolling restart: the silo hands its grains over and leaves
        await Task.Delay(LoadAfterKill);
        stop.Cancel();
        await Task.WhenAll(senders);

        var sorted = latencies.OrderBy(l => l).ToArray();
        output.WriteLine($"acknowledged {acked.Count} ({ackedBeforeKill} before the kill), failed {failures.Count}, " +
                         $"latency p50 {sorted[sorted.Length / 2]:F1} ms, max {sorted[^1]:F0} ms");
        Assert.True(failures.IsEmpty, $"{failures.Count} failed requests:\n{string.Join("\n", failures.Take(10))}\n{frontEnd.Output[^Math.Min(3000, frontEnd.Output.Length)..]}");
        Assert.True(acked.Count > ackedBeforeKill + Senders, "sending did not go on after the kill");

        // Every acknowledged message is in its room exactly once (read through the surviving front end).
        await ProcessCluster.AssertEveryAcknowledgedMessageOnceAsync(alice, rooms, acked);
    }

    [Fact]
    public async Task PostgreSQL_crashing_under_load_answers_503_never_500_and_loses_nothing_acknowledged()
    {
        await using var pg = await PrivatePostgres.StartAsync(fsync: true);
        var postgres = pg.Server;
        var database = pg.ConnectionString;
        using var frontEnd = HomeserverProcess.Start("Api", database, http: true);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        await frontEnd.WaitReadyAsync(http);
        var alice = await MatrixTestClient.RegisterAsync(TestSilo.OfProcess(frontEnd.Url));
        var rooms = new List<string>();
        for (var i = 0; i < 4; i++) rooms.Add(await alice.CreateRoomAsync());

        // Clients as real ones behave: a 503 is retried after Retry-After with the same transaction id.
        var load = new OutageTolerantLoad(alice.Http, rooms, "p");

        await Task.Delay(TimeSpan.FromSeconds(2));
        await postgres.StopAsync(immediate: true);
        await Task.Delay(TimeSpan.FromSeconds(3));
        await postgres.StartAsync();
        await Task.Delay(TimeSpan.FromSeconds(5));
        await load.StopAsync();

        output.WriteLine($"acknowledged {load.Acked.Count}, answered 503 {load.Unavailable} times, unexpected {load.Unexpected.Count}");
        Assert.True(load.Unexpected.IsEmpty, string.Join("\n", load.Unexpected.Take(10)));
        Assert.True(load.Unavailable > 0, "the outage was not seen");
        await ProcessCluster.AssertEveryAcknowledgedMessageOnceAsync(alice, rooms, load.Acked);
    }
}

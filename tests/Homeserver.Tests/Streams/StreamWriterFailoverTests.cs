using System.Collections.Concurrent;
using Homeserver.Streams;
using Homeserver.Tests.Infrastructure;
using Npgsql;

namespace Homeserver.Tests.Streams;

/// <summary>Writers under failure: a dying silo, a competing activation, a database that goes away.</summary>
public sealed class StreamWriterFailoverTests
{
    private static StreamRow Row(string payload) => new("test", null, $"{{\"p\":\"{payload}\"}}");

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Writer_silo_stopped_or_killed_mid_stream_loses_no_acknowledged_append(bool kill)
    {
        await using var cluster = await HomeserverTestCluster.StartAsync(3, new Dictionary<string, string?> { ["Homeserver:EventWriters"] = "8" });
        // Writers activate on the first silo; move one to another silo to take down.
        var victimIndex = 2;
        var survivor = 1;
        var victimAddress = cluster.Silos[victimIndex].Get<Orleans.Runtime.ILocalSiloDetails>().SiloAddress;
        var key = StreamNames.WriterKey(StreamNames.Events, 5);
        var moving = cluster.Silos[0].Grains.GetGrain<IStreamWriterGrain>(key);
        await moving.MoveToAsync(victimAddress);
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while ((await moving.GetPositionAsync()).Silo != victimAddress.ToString() && DateTime.UtcNow < deadline) await Task.Delay(100);
        Assert.Equal(victimAddress.ToString(), (await moving.GetPositionAsync()).Silo);
        var writer = cluster.Silos[survivor].Grains.GetGrain<IStreamWriterGrain>(key!);
        var epochBefore = (await writer.GetPositionAsync()).Epoch;

        var acknowledged = new ConcurrentDictionary<string, long>();
        var failures = 0;
        using var stop = new CancellationTokenSource();
        var appenders = Enumerable.Range(0, 8).Select(a => Task.Run(async () =>
        {
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                var id = $"a{a}-{i}";
                try
                {
                    var result = await writer.AppendAsync([Row(id)]);
                    acknowledged[id] = result.LastPosition;
                }
                catch (Exception)
                {
                    Interlocked.Increment(ref failures);
                    await Task.Delay(50);
                }
            }
        })).ToList();

        await Task.Delay(500);
        if (kill) await cluster.KillSiloAsync(victimIndex);
        else await cluster.StopSiloAsync(victimIndex);
        var countAtFailure = acknowledged.Count;

        // Appends resume on a survivor.
        deadline = DateTime.UtcNow.AddSeconds(45);
        while (acknowledged.Count < countAtFailure + 200 && DateTime.UtcNow < deadline) await Task.Delay(100);
        stop.Cancel();
        await Task.WhenAll(appenders);
        Assert.True(acknowledged.Count >= countAtFailure + 200, $"appends did not resume ({acknowledged.Count} after {countAtFailure})");

        var after = await writer.GetPositionAsync();
        Assert.NotEqual(victimAddress.ToString(), after.Silo);
        Assert.True(after.Epoch > epochBefore);

        // Every acknowledged append is in the log at the position it was acknowledged with.
        var log = new Dictionary<string, long>();
        await using (var cmd = cluster.Database.CreateCommand(
            "SELECT payload::json->>'p', position FROM stream_log WHERE stream = 'events' AND kind = 'test'"))
        await using (var reader = await cmd.ExecuteReaderAsync())
            while (await reader.ReadAsync()) log[reader.GetString(0)] = reader.GetInt64(1);
        foreach (var (id, position) in acknowledged)
        {
            Assert.True(log.TryGetValue(id, out var logged), $"acknowledged append {id} is missing from the log");
            Assert.Equal(position, logged);
        }
        Assert.Equal(acknowledged.Values.Count, acknowledged.Values.Distinct().Count());

        // The surviving readers reach the writer's position and agree with the log. The bound is as generous as the
        // resumption's: the new activation does not know its subscribers, so a reader learns of it from its backstop
        // poll (and of a killed silo only once the cluster declares it dead); on a loaded machine that took over 15 s.
        foreach (var silo in cluster.Silos.Where(x => x.Running))
        {
            var notifier = silo.Get<StreamNotifier>();
            var (_, w) = StreamNames.ParseWriterKey(key!);
            Assert.True(await notifier.WaitForTokenAsync(StreamToken.Zero.Advance(StreamNames.Events, w, after.Position), TimeSpan.FromSeconds(45)),
                $"a surviving reader did not reach {after.Position} of writer {w}: it is at {notifier.Current.Get(StreamNames.Events, w)}");
        }
    }

    [Fact]
    public async Task A_superseded_activation_fails_loudly_and_writes_nothing()
    {
        await using var cluster = await HomeserverTestCluster.StartAsync(2);
        var writer = cluster.Silos[0].Grains.GetGrain<IStreamWriterGrain>(StreamNames.WriterKey(StreamNames.Typing, 0));
        var first = await writer.AppendAsync([Row("before")]);

        // A second activation of the same shard takes over in the database (what Orleans may briefly allow).
        await using (var cmd = cluster.Database.CreateCommand("UPDATE stream_writers SET epoch = epoch + 1 WHERE stream = 'typing' AND writer = 0"))
            Assert.Equal(1, await cmd.ExecuteNonQueryAsync());

        await Assert.ThrowsAsync<StreamWriterFencedException>(() => writer.AppendAsync([Row("loser")]));
        await using (var cmd = cluster.Database.CreateCommand("SELECT count(*) FROM stream_log WHERE stream = 'typing' AND payload LIKE '%loser%'"))
            Assert.Equal(0L, (long)(await cmd.ExecuteScalarAsync())!);

        // The fenced activation shuts itself down; the next call reaches a fresh one that continues after the log.
        AppendResult? next = null;
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (next is null && DateTime.UtcNow < deadline)
        {
            try { next = await writer.AppendAsync([Row("winner")]); }
            catch (StreamWriterFencedException) { await Task.Delay(100); }
        }
        Assert.NotNull(next);
        Assert.True(next!.LastPosition > first.LastPosition);
        var readers = cluster.Silos.Select(s => s.Get<StreamNotifier>());
        foreach (var n in readers)
            Assert.True(await n.WaitForTokenAsync(StreamToken.Zero.Advance(StreamNames.Typing, 0, next.LastPosition), TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task Two_activations_racing_in_the_database_never_share_a_position()
    {
        // Drive the fencing protocol directly: each "activation" bumps the epoch then appends with the epoch it got.
        var cs = await TestPostgres.CreateDatabaseAsync();
        await using var db = NpgsqlDataSource.Create(cs);
        await Homeserver.Storage.MigrationRunner.ApplyAsync(db, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);

        async Task<long> ActivateAsync()
        {
            await using var cmd = db.CreateCommand(
                "INSERT INTO stream_writers (stream, writer, epoch) VALUES ('receipts', 0, 1) ON CONFLICT (stream, writer) DO UPDATE SET epoch = stream_writers.epoch + 1 RETURNING epoch");
            return (long)(await cmd.ExecuteScalarAsync())!;
        }
        async Task<bool> AppendAsync(long epoch, string payload)
        {
            await using var batch = db.CreateBatch();
            batch.BatchCommands.Add(new NpgsqlBatchCommand("SELECT stream_fence('receipts', 0, $1)") { Parameters = { new() { Value = epoch } } });
            batch.BatchCommands.Add(new NpgsqlBatchCommand(
                "INSERT INTO stream_log (stream, position, writer, kind, payload) VALUES ('receipts', nextval('stream_seq_receipts'), 0, 'test', $1)")
            { Parameters = { new() { Value = payload } } });
            try { await batch.ExecuteNonQueryAsync(); return true; }
            catch (PostgresException e) when (e.SqlState == "HSF01") { return false; }
        }

        var a = await ActivateAsync();
        var b = await ActivateAsync();
        var results = await Task.WhenAll(Enumerable.Range(0, 50).SelectMany(i => new[] { AppendAsync(a, $"a{i}"), AppendAsync(b, $"b{i}") }));
        Assert.Equal(50, results.Count(r => r));   // only b's appends commit

        await using var check = db.CreateCommand("SELECT count(*), count(DISTINCT position), count(*) FILTER (WHERE payload LIKE 'a%') FROM stream_log WHERE stream = 'receipts'");
        await using var reader = await check.ExecuteReaderAsync();
        await reader.ReadAsync();
        Assert.Equal(50L, reader.GetInt64(0));
        Assert.Equal(50L, reader.GetInt64(1));
        Assert.Equal(0L, reader.GetInt64(2));
    }

    /// <summary>
    /// The periodic work that stream writers own (log pruning, transaction id expiry, the presence watchdog) runs in
    /// their timers. It survives the loss of the silo that ran it because no writer stays deactivated: every silo's
    /// reader polls every writer (at most every 4 s when quiet, every second after a membership change), and a poll
    /// activates the writer, timers and all, on a live silo, with no append and no operator.
    /// </summary>
    [Fact]
    public async Task A_writer_whose_silo_died_is_active_again_elsewhere_without_any_append()
    {
        await using var cluster = await HomeserverTestCluster.StartAsync(2);
        var key = StreamNames.WriterKey(StreamNames.Presence, 0);
        var victim = (await cluster.Silos[0].Grains.GetGrain<IStreamWriterGrain>(key).GetPositionAsync()).Silo;
        string Address(int i) => cluster.Silos[i].Get<Orleans.Runtime.ILocalSiloDetails>().SiloAddress.ToString();
        var victimIndex = Address(0) == victim ? 0 : 1;
        var survivorIndex = 1 - victimIndex;
        Assert.Equal(victim, Address(victimIndex));

        await cluster.KillSiloAsync(victimIndex);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        (string? Silo, long Epoch) row = (null, 0);
        while (DateTime.UtcNow < deadline)
        {
            // Read from the database: asking the grain would itself activate it.
            await using var cmd = cluster.Database.CreateCommand("SELECT silo, epoch FROM stream_writers WHERE stream = 'presence' AND writer = 0");
            await using var reader = await cmd.ExecuteReaderAsync();
            if (await reader.ReadAsync()) row = (reader.GetString(0), reader.GetInt64(1));
            if (row.Silo is not null && row.Silo != victim) break;
            await Task.Delay(200);
        }
        Assert.NotEqual(victim, row.Silo);
        Assert.Equal(Address(survivorIndex), row.Silo);
    }
}

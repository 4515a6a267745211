using System.Collections.Concurrent;
using System.Diagnostics;
using Homeserver.Streams;
using Npgsql;

namespace Homeserver.Bench;

/// <summary>
/// Issue 2's benchmark: PostgreSQL alone (single-row commits from 8 connections; 100-row transactions) beside appends
/// through one writer grain from many callers, and cross-silo notification latency, all on one PostgreSQL in one run.
/// </summary>
public static class StreamBenchmark
{
    private static readonly string Payload = "{\"body\":\"" + new string('x', 488) + "\"}"; // 500 bytes

    public static async Task RunAsync(TimeSpan duration, int callers)
    {
        await using var cluster = await BenchCluster.StartAsync(2);
        await using var db = NpgsqlDataSource.Create(cluster.ConnectionString + ";Maximum Pool Size=100");
        await using (var create = db.CreateCommand("CREATE TABLE IF NOT EXISTS bench_rows (id bigserial PRIMARY KEY, payload text NOT NULL)"))
            await create.ExecuteNonQueryAsync();

        var single = await BaselineSingleRowCommitsAsync(db, duration, connections: 8);
        Console.WriteLine($"baseline: single-row commits, 8 connections: {single.Rate:F0} rows/s, {Stats.Summary(single.Latencies)}");
        var batched = await BaselineBatchedAsync(db, duration, rowsPerTransaction: 100, connections: 1);
        Console.WriteLine($"baseline: 100-row transactions, 1 connection: {batched:F0} rows/s");
        var batched8 = await BaselineBatchedAsync(db, duration, rowsPerTransaction: 100, connections: 8);
        Console.WriteLine($"baseline: 100-row transactions, 8 connections: {batched8:F0} rows/s");

        var grains = cluster.Silos[0].Services.GetRequiredService<IGrainFactory>();
        var writer = grains.GetGrain<IStreamWriterGrain>(StreamNames.WriterKey(StreamNames.Presence, 0));
        await writer.AppendAsync([new StreamRow("bench", null, Payload)]); // warm-up
        var appends = await WriterAppendsAsync(writer, duration, callers);
        Console.WriteLine($"writer grain: {callers} concurrent callers, 1-row appends: {appends.Rate:F0} appends/s, {Stats.Summary(appends.Latencies)}");
        Console.WriteLine($"ratio writer/baseline single-row commits: {appends.Rate / single.Rate:F2}x; writer/100-row transactions (1 conn): {appends.Rate / batched:F2}x");

        var propagation = await CrossSiloLatencyAsync(cluster, samples: 2000);
        Console.WriteLine($"cross-silo notification (ack on silo 0 -> reader on silo 1 advanced): {Stats.Summary(propagation)}");
    }

    private static async Task<(double Rate, List<double> Latencies)> BaselineSingleRowCommitsAsync(NpgsqlDataSource db, TimeSpan duration, int connections)
    {
        var latencies = new ConcurrentBag<double>();
        long rows = 0;
        var stop = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, connections).Select(async _ =>
        {
            await using var conn = await db.OpenConnectionAsync();
            await using var cmd = new NpgsqlCommand("INSERT INTO bench_rows (payload) VALUES ($1)", conn);
            cmd.Parameters.AddWithValue(Payload);
            await cmd.PrepareAsync();
            while (stop.Elapsed < duration)
            {
                var t = Stopwatch.GetTimestamp();
                await cmd.ExecuteNonQueryAsync();
                latencies.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
                Interlocked.Increment(ref rows);
            }
        }));
        return (rows / stop.Elapsed.TotalSeconds, latencies.ToList());
    }

    private static async Task<double> BaselineBatchedAsync(NpgsqlDataSource db, TimeSpan duration, int rowsPerTransaction, int connections)
    {
        long rows = 0;
        var stop = Stopwatch.StartNew();
        var payloads = Enumerable.Repeat(Payload, rowsPerTransaction).ToArray();
        await Task.WhenAll(Enumerable.Range(0, connections).Select(async _ =>
        {
            await using var conn = await db.OpenConnectionAsync();
            while (stop.Elapsed < duration)
            {
                await using var cmd = new NpgsqlCommand("INSERT INTO bench_rows (payload) SELECT unnest($1::text[])", conn);
                cmd.Parameters.AddWithValue(payloads);
                await cmd.ExecuteNonQueryAsync();
                Interlocked.Add(ref rows, rowsPerTransaction);
            }
        }));
        return rows / stop.Elapsed.TotalSeconds;
    }

    private static async Task<(double Rate, List<double> Latencies)> WriterAppendsAsync(IStreamWriterGrain writer, TimeSpan duration, int callers)
    {
        var latencies = new ConcurrentBag<double>();
        long appends = 0;
        var stop = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, callers).Select(async _ =>
        {
            var row = new[] { new StreamRow("bench", null, Payload) };
            while (stop.Elapsed < duration)
            {
                var t = Stopwatch.GetTimestamp();
                await writer.AppendAsync(row);
                latencies.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
                Interlocked.Increment(ref appends);
            }
        }));
        return (appends / stop.Elapsed.TotalSeconds, latencies.ToList());
    }

    private static async Task<List<double>> CrossSiloLatencyAsync(BenchCluster cluster, int samples)
    {
        var grains = cluster.Silos[0].Services.GetRequiredService<IGrainFactory>();
        var writer = grains.GetGrain<IStreamWriterGrain>(StreamNames.WriterKey(StreamNames.Receipts, 0));
        var notifierB = cluster.Silos[1].Services.GetRequiredService<StreamNotifier>();
        var latencies = new List<double>(samples);
        for (var i = 0; i < samples; i++)
        {
            var result = await writer.AppendAsync([new StreamRow("bench", "!room:bench", Payload)]);
            var acked = Stopwatch.GetTimestamp();
            if (!await notifierB.WaitForTokenAsync(StreamToken.Zero.Advance(StreamNames.Receipts, 0, result.LastPosition), TimeSpan.FromSeconds(10)))
                throw new TimeoutException("silo 1 did not see the append");
            latencies.Add(Stopwatch.GetElapsedTime(acked).TotalMilliseconds);
            if (i % 10 == 0) await Task.Delay(1); // a steady stream, not a burst
        }
        return latencies;
    }
}

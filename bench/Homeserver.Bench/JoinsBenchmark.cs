using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using Homeserver.Hosting;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Homeserver.Bench;

/// <summary>
/// Issue 13's joins: <c>users</c> users joining <c>rooms</c> public rooms created beforehand, through the HTTP API of two
/// silos from a number of connections. The joins are dealt out room by room (every user joins room 0, then room 1, ...:
/// the connections crowd into the same room, as when a deployment's users pour into its rooms), or with
/// <c>users-first</c> user by user (a connection takes a user and joins it to every room in order: the connections
/// drift apart over the rooms and seldom meet). The baseline runs in the
/// same process on the same PostgreSQL: the same joins with <see cref="RoomOptions.BatchStateWrites"/> off (one append
/// per state write, main before issue 13), each phase on rooms of its own, alternating so that neither always runs
/// warmer.
/// </summary>
public static class JoinsBenchmark
{
    private const string V3 = "/_matrix/client/v3";

    public static async Task RunAsync(int users, int rooms, int connections, int pairs, bool roomsFirst)
    {
        await using var cluster = await BenchCluster.StartAsync(2);
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = connections, PooledConnectionLifetime = TimeSpan.FromMinutes(30) })
        { Timeout = TimeSpan.FromSeconds(120) };

        Console.WriteLine($"registering {users} users; joins dealt out {(roomsFirst ? "room by room" : "user by user")}...");
        var accounts = new (string UserId, string Token, int Silo)[users];
        await Parallel.ForEachAsync(Enumerable.Range(0, users), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, ct) =>
        {
            var silo = i % 2;
            var r = await BenchHttp.SendAsync(http, HttpMethod.Post, cluster.Urls[silo] + $"{V3}/register", null,
                new JsonObject { ["username"] = $"joiner{i}", ["password"] = "benchmark-password", ["auth"] = new JsonObject { ["type"] = "m.login.dummy" } }, ct);
            accounts[i] = (r["user_id"]!.GetValue<string>(), r["access_token"]!.GetValue<string>(), silo);
        });

        // The option is read by each write, so flipping it on every silo switches the path between phases.
        void Batching(bool on)
        {
            foreach (var silo in cluster.Silos) silo.Services.GetRequiredService<IOptions<HomeserverOptions>>().Value.Rooms.BatchStateWrites = on;
        }

        var cpu = new CpuMeter(cluster.Postgres.DataDirectory);
        long CatchUps() => cluster.Silos.Sum(s => s.Services.GetRequiredService<Homeserver.Streams.SiloStreamReader>().CatchUps);
        // Unmeasured: both paths run first on a few rooms, so that the measured phases run optimised code.
        var warmRooms = Math.Max(1, rooms / 15);
        foreach (var on in new[] { true, false })
        {
            Batching(on);
            await PhaseAsync(http, cluster, accounts, await CreateRoomsAsync(http, cluster, accounts, warmRooms), connections, roomsFirst);
        }

        var figures = new Dictionary<bool, List<double>> { [true] = [], [false] = [] };
        for (var pair = 0; pair < pairs; pair++)
        {
            // Alternate which path goes first: off, on, then on, off, ...
            foreach (var on in pair % 2 == 0 ? new[] { false, true } : [true, false])
            {
                if (!on && SkipBaseline) continue;
                var roomIds = await CreateRoomsAsync(http, cluster, accounts, rooms);
                Batching(on);
                var load = Load();
                Console.WriteLine($"{(on ? "batched state writes" : "one append per state write")}: {users * rooms} joins starting (pid {Environment.ProcessId})");
                var catchUpsBefore = CatchUps();
                var before = cpu.Sample();
                var allocatedBefore = GC.GetTotalAllocatedBytes();
                var (elapsed, latencies) = await PhaseAsync(http, cluster, accounts, roomIds, connections, roomsFirst);
                var used = cpu.Sample() - before;
                var allocated = GC.GetTotalAllocatedBytes() - allocatedBefore;
                var joins = (long)users * rooms;
                var rate = joins / elapsed.TotalSeconds;
                figures[on].Add(rate);
                var joined = await JoinedAsync(cluster, roomIds);
                Console.WriteLine($"{(on ? "batched state writes" : "one append per state write")}: {joins} joins in {elapsed.TotalSeconds:F1} s = {rate:F0} joins/s, " +
                                  $"{Stats.Summary(latencies)}; {used.PerRequest(joins)}; {allocated / joins / 1024.0:F1} KB allocated in .NET per join; " +
                                  $"GC paused {used.GcPauseMs:F0} ms in {used.Collections} collections ({used.Gen1} of gen1, {used.Gen2} of gen2); readers caught up from the log {CatchUps() - catchUpsBefore} times; " +
                                  $"memberships joined {joined}/{joins}; load before {load}");
                if (joined != joins) throw new InvalidOperationException($"{joins - joined} joins are missing");
            }
        }
        if (SkipBaseline)
        {
            Console.WriteLine($"median of {pairs}: batched {Median(figures[true]):F0} joins/s (baseline skipped)");
            return;
        }
        var batched = Median(figures[true]);
        var unbatched = Median(figures[false]);
        Console.WriteLine($"median of {pairs}: batched {batched:F0} joins/s, one append per state write {unbatched:F0} joins/s; ratio {batched / unbatched:F2}x");
    }

    /// <summary>
    /// <c>BENCH_JOINS_BASELINE=skip</c> runs only the batched phases (after the same warm-up of both paths): for profiling
    /// the batched path, and for comparing two builds' batched CPU per join without the serial phase's minutes.
    /// </summary>
    private static bool SkipBaseline => Environment.GetEnvironmentVariable("BENCH_JOINS_BASELINE") == "skip";

    private static async Task<List<string>> CreateRoomsAsync(HttpClient http, BenchCluster cluster, IReadOnlyList<(string UserId, string Token, int Silo)> accounts, int rooms)
    {
        var roomIds = new ConcurrentBag<(int, string)>();
        var next = -1;
        await Task.WhenAll(Enumerable.Range(0, 8).Select(async _ =>
        {
            for (var i = Interlocked.Increment(ref next); i < rooms; i = Interlocked.Increment(ref next))
            {
                var owner = accounts[i % accounts.Count];
                var r = await BenchHttp.SendAsync(http, HttpMethod.Post, cluster.Urls[owner.Silo] + $"{V3}/createRoom", owner.Token, new JsonObject { ["preset"] = "public_chat" });
                roomIds.Add((i, r["room_id"]!.GetValue<string>()));
            }
        }));
        return roomIds.OrderBy(r => r.Item1).Select(r => r.Item2).ToList();
    }

    /// <summary>Every user joins every room; each connection takes the next join (room by room, or user by user).</summary>
    private static async Task<(TimeSpan Elapsed, List<double> Latencies)> PhaseAsync(HttpClient http, BenchCluster cluster,
        IReadOnlyList<(string UserId, string Token, int Silo)> accounts, List<string> roomIds, int connections, bool roomsFirst)
    {
        var latencies = new ConcurrentBag<double>();
        var total = accounts.Count * roomIds.Count;
        var next = -1;
        var watch = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, connections).Select(async _ =>
        {
            for (var k = Interlocked.Increment(ref next); k < total; k = Interlocked.Increment(ref next))
            {
                var (user, room) = roomsFirst ? (k % accounts.Count, roomIds[k / accounts.Count]) : (k / roomIds.Count, roomIds[k % roomIds.Count]);
                var (_, token, silo) = accounts[user];
                var t = Stopwatch.GetTimestamp();
                using var request = new HttpRequestMessage(HttpMethod.Post, $"{cluster.Urls[silo]}{V3}/join/{Uri.EscapeDataString(room)}");
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
                request.Content = new StringContent("{}", System.Text.Encoding.UTF8, "application/json");
                using var response = await http.SendAsync(request);
                if (!response.IsSuccessStatusCode)
                    throw new InvalidOperationException($"join {room}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
                latencies.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
            }
        }));
        return (watch.Elapsed, latencies.ToList());
    }

    private static async Task<long> JoinedAsync(BenchCluster cluster, List<string> roomIds)
    {
        await using var db = NpgsqlDataSource.Create(cluster.ConnectionString);
        await using var cmd = db.CreateCommand("SELECT count(*) FROM room_memberships WHERE membership = 'join' AND room_id = ANY($1)");
        cmd.Parameters.AddWithValue(roomIds.ToArray());
        return (long)(await cmd.ExecuteScalarAsync())!;
    }

    private static string Load() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "?";

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count == 0 ? double.NaN : sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }
}

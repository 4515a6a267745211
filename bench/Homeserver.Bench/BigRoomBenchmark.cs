using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Homeserver.Bench;

/// <summary>
/// Issue 13's large room: one room of N members built through the HTTP API (joins in parallel), P of them
/// long-polling /sync on two silos, then messages sent one at a time: for each, the time from the send's 200 to each
/// poller's /sync returning with it. Then, beside the same call in a small room of the same run: joining one more
/// member, the member lists, a lazy-loaded initial /sync and a lazy-loaded /messages page.
/// </summary>
public static class BigRoomBenchmark
{
    private const string V3 = "/_matrix/client/v3";
    private const int SmallRoomMembers = 10;
    private const int Samples = 5;

    /// <summary>What the pollers wait for: a message with this body, or (<paramref name="joiner"/>) that user's join.</summary>
    private sealed class Round(string body, string? joiner = null)
    {
        public readonly string Body = body;
        public readonly string? Joiner = joiner;
        public long SentAt;   // 0 until the send's 200 (a Stopwatch timestamp)
        public readonly ConcurrentDictionary<int, long> Received = new();
    }

    public static async Task RunAsync(int members, int pollers, int rounds, bool presence)
    {
        pollers = Math.Min(pollers, members - 1);
        await using var cluster = await BenchCluster.StartAsync(2, new Dictionary<string, string?>
        {
            ["Homeserver:EnablePresence"] = presence ? "true" : "false",
        });
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = pollers + 256, PooledConnectionLifetime = TimeSpan.FromMinutes(30) })
        { Timeout = TimeSpan.FromSeconds(120) };

        // Members, the extra joiners (member N+1...) and the small room's members, registered in parallel.
        var total = members + 2 * Samples + SmallRoomMembers;
        var clock = Stopwatch.StartNew();
        var users = new (string UserId, string Token, string Url)[total];
        await Parallel.ForEachAsync(Enumerable.Range(0, total), new ParallelOptions { MaxDegreeOfParallelism = 32 }, async (i, ct) =>
        {
            var url = cluster.Urls[i % 2];
            var r = await BenchHttp.SendAsync(http, HttpMethod.Post, $"{url}{V3}/register", null,
                new JsonObject { ["username"] = $"big{i}", ["password"] = "benchmark-password", ["auth"] = new JsonObject { ["type"] = "m.login.dummy" } }, ct);
            users[i] = (r["user_id"]!.GetValue<string>(), r["access_token"]!.GetValue<string>(), url);
        });
        Console.WriteLine($"registered {total} users in {clock.Elapsed.TotalSeconds:F1} s");

        var actor = users[0];
        var roomId = await CreateRoomAsync(http, actor);
        var room = Uri.EscapeDataString(roomId);
        clock.Restart();
        var joinLatencies = new ConcurrentBag<double>();
        await Parallel.ForEachAsync(Enumerable.Range(1, members - 1), new ParallelOptions { MaxDegreeOfParallelism = 32 }, async (i, ct) =>
        {
            var started = Stopwatch.GetTimestamp();
            await BenchHttp.SendAsync(http, HttpMethod.Post, $"{users[i].Url}{V3}/join/{room}", users[i].Token, new JsonObject(), ct);
            joinLatencies.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            if (i % 2000 == 0) Console.WriteLine($"  {i} joined, {clock.Elapsed.TotalSeconds:F1} s");
        });
        var buildSeconds = clock.Elapsed.TotalSeconds;
        Console.WriteLine($"{members} members joined in {buildSeconds:F1} s ({(members - 1) / buildSeconds:F0} joins/s from 32 connections; " +
                          $"per join {Stats.Summary(joinLatencies.ToList())})");

        var smallMembers = users.Skip(members + 2 * Samples).ToArray();
        var smallRoomId = await CreateRoomAsync(http, smallMembers[0]);
        var smallRoom = Uri.EscapeDataString(smallRoomId);
        foreach (var u in smallMembers.Skip(1)) await BenchHttp.SendAsync(http, HttpMethod.Post, $"{u.Url}{V3}/join/{smallRoom}", u.Token, new JsonObject());

        // Pollers start from a token taken after every join (one sync from scratch each would ship the whole room).
        var since0 = (await BenchHttp.SendAsync(http, HttpMethod.Get,
            $"{actor.Url}{V3}/sync?timeout=0&filter={Uri.EscapeDataString(LazyFilter(1))}", actor.Token, null))["next_batch"]!.GetValue<string>();
        Round? current = null;
        using var stop = new CancellationTokenSource();
        var pollerUsers = Enumerable.Range(1, pollers).Select(i => users[i]).ToArray();
        var failures = 0;
        // As clients of big rooms do (Element), the pollers lazy-load members.
        var pollFilter = Uri.EscapeDataString(LazyFilter(10));
        var pollTasks = pollerUsers.Select((u, index) => Task.Run(async () =>
        {
            var since = since0;
            while (!stop.IsCancellationRequested)
            {
                JsonNode sync;
                try { sync = await BenchHttp.SendAsync(http, HttpMethod.Get, $"{u.Url}{V3}/sync?timeout=30000&since={since}&filter={pollFilter}", u.Token, null, stop.Token); }
                catch (OperationCanceledException) when (stop.IsCancellationRequested) { return; }
                // A poll past the client's timeout (a machine under load) is retried like a failed one, not the end of
                // the poller: one that stops polling would hold every later round to its 30 s limit.
                catch (Exception e) when (e is InvalidOperationException or HttpRequestException or OperationCanceledException)
                {
                    if (Interlocked.Increment(ref failures) <= 3) Console.WriteLine($"  poller {index}: {e.Message}");
                    await Task.Delay(100);
                    continue;
                }
                var at = Stopwatch.GetTimestamp();
                since = sync["next_batch"]!.GetValue<string>();
                var round = Volatile.Read(ref current);
                if (round is null) continue;
                if (sync["rooms"]?["join"]?[roomId]?["timeline"]?["events"] is JsonArray events
                    && events.Any(e => round.Joiner is null
                        ? e?["content"]?["body"]?.GetValue<string>() == round.Body
                        : e?["type"]?.GetValue<string>() == "m.room.member" && e["state_key"]?.GetValue<string>() == round.Joiner))
                    round.Received.TryAdd(index, at);
            }
        })).ToList();

        var notifiers = cluster.Silos.Select(s => s.Services.GetRequiredService<Homeserver.Streams.StreamNotifier>()).ToList();
        async Task<bool> ParkedAsync(TimeSpan within)
        {
            var until = DateTime.UtcNow + within;
            while (notifiers.Sum(n => n.WaiterCount) < pollers && DateTime.UtcNow < until) await Task.Delay(5);
            return notifiers.Sum(n => n.WaiterCount) >= pollers;
        }
        if (!await ParkedAsync(TimeSpan.FromSeconds(120))) Console.WriteLine($"  only {notifiers.Sum(n => n.WaiterCount)}/{pollers} parked");

        var perDelivery = new List<double>();
        var perRoundMax = new List<double>();
        var cpu = new CpuMeter(cluster.Postgres.DataDirectory);
        var measured = default(CpuMeter.Usage);
        var warmup = Math.Max(3, rounds / 5);
        for (var r = -warmup; r < rounds; r++)
        {
            if (r == 0) measured = cpu.Sample();
            await ParkedAsync(TimeSpan.FromSeconds(10));
            var round = new Round($"big {r}");
            Volatile.Write(ref current, round);
            await BenchHttp.SendAsync(http, HttpMethod.Put, $"{actor.Url}{V3}/rooms/{room}/send/m.room.message/big{r}", actor.Token,
                new JsonObject { ["msgtype"] = "m.text", ["body"] = round.Body });
            round.SentAt = Stopwatch.GetTimestamp();
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (round.Received.Count < pollers && DateTime.UtcNow < deadline) await Task.Delay(2);
            Volatile.Write(ref current, null);
            if (round.Received.Count < pollers) Console.WriteLine($"  round {r}: only {round.Received.Count}/{pollers} received");
            if (r < 0) continue;
            // A poller may hold the event before the sender has its 200: that counts as no wait at all.
            var latencies = round.Received.Values.Select(at => Math.Max(0, (at - round.SentAt) * 1000.0 / Stopwatch.Frequency)).ToList();
            perDelivery.AddRange(latencies);
            if (latencies.Count > 0) perRoundMax.Add(latencies.Max());
        }
        var usage = cpu.Sample() - measured;
        perDelivery.Sort();
        perRoundMax.Sort();
        Console.WriteLine($"message to {pollers} of {members} members long-polling /sync on 2 silos, {rounds} rounds after {warmup} unmeasured " +
                          "(from the send's 200 to each poller's /sync holding it):");
        Console.WriteLine($"  per delivery p50 {Stats.Percentile(perDelivery, 50):F1} ms, p95 {Stats.Percentile(perDelivery, 95):F1} ms, " +
                          $"p99 {Stats.Percentile(perDelivery, 99):F1} ms, max {(perDelivery.Count > 0 ? perDelivery[^1] : double.NaN):F1} ms (n={perDelivery.Count}); " +
                          $"last poller per round p50 {Stats.Percentile(perRoundMax, 50):F1} ms; poll failures {failures}");
        Console.WriteLine($"  CPU over the measured rounds: {usage.Summary()}");

        // Joins while the pollers stay parked (each join wakes them all): member N+1... beside a small room's new member,
        // and the time from the join's 200 to each poller holding it.
        var bigJoins = new List<double>();
        var smallJoins = new List<double>();
        var joinDelivery = new List<double>();
        var joinLastPoller = new List<double>();
        for (var s = 0; s < Samples; s++)
        {
            await ParkedAsync(TimeSpan.FromSeconds(10));
            var joiner = users[members + s];
            var round = new Round("", joiner.UserId);
            Volatile.Write(ref current, round);
            bigJoins.Add(await TimeAsync(() => BenchHttp.SendAsync(http, HttpMethod.Post, $"{joiner.Url}{V3}/join/{room}", joiner.Token, new JsonObject())));
            round.SentAt = Stopwatch.GetTimestamp();
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (round.Received.Count < pollers && DateTime.UtcNow < deadline) await Task.Delay(2);
            Volatile.Write(ref current, null);
            if (round.Received.Count < pollers) Console.WriteLine($"  join {s}: only {round.Received.Count}/{pollers} received");
            var latencies = round.Received.Values.Select(at => Math.Max(0, (at - round.SentAt) * 1000.0 / Stopwatch.Frequency)).ToList();
            joinDelivery.AddRange(latencies);
            if (latencies.Count > 0) joinLastPoller.Add(latencies.Max());
            await ParkedAsync(TimeSpan.FromSeconds(10));
            var smallJoiner = users[members + Samples + s];
            smallJoins.Add(await TimeAsync(() => BenchHttp.SendAsync(http, HttpMethod.Post, $"{smallJoiner.Url}{V3}/join/{smallRoom}", smallJoiner.Token, new JsonObject())));
        }
        joinDelivery.Sort();
        joinLastPoller.Sort();
        Console.WriteLine($"  join delivered to the {pollers} pollers: per delivery p50 {Stats.Percentile(joinDelivery, 50):F1} ms, " +
                          $"p99 {Stats.Percentile(joinDelivery, 99):F1} ms; last poller per join p50 {Stats.Percentile(joinLastPoller, 50):F1} ms, " +
                          $"max {(joinLastPoller.Count > 0 ? joinLastPoller[^1] : double.NaN):F1} ms");
        stop.Cancel();
        try { await Task.WhenAll(pollTasks); } catch (OperationCanceledException) { }
        Report($"join as member {members + 1}..{members + Samples}", bigJoins, smallJoins);

        var bigReader = users[1];
        var smallReader = smallMembers[1];
        Task<List<double>> SampleAsync((string UserId, string Token, string Url) u, string path) =>
            SequentialAsync(() => BenchHttp.SendAsync(http, HttpMethod.Get, $"{u.Url}{V3}{path}", u.Token, null));
        Report("GET /members", await SampleAsync(bigReader, $"/rooms/{room}/members"), await SampleAsync(smallReader, $"/rooms/{smallRoom}/members"));
        Report("GET /joined_members", await SampleAsync(bigReader, $"/rooms/{room}/joined_members"), await SampleAsync(smallReader, $"/rooms/{smallRoom}/joined_members"));
        var lazy = Uri.EscapeDataString(LazyFilter(10));
        Report("lazy-loaded /sync from scratch (timeline 10)", await SampleAsync(bigReader, $"/sync?timeout=0&filter={lazy}"),
            await SampleAsync(smallReader, $"/sync?timeout=0&filter={lazy}"));
        var messagesFilter = Uri.EscapeDataString("{\"lazy_load_members\":true}");
        Report("lazy-loaded /messages (20 back)", await SampleAsync(bigReader, $"/rooms/{room}/messages?dir=b&limit=20&filter={messagesFilter}"),
            await SampleAsync(smallReader, $"/rooms/{smallRoom}/messages?dir=b&limit=20&filter={messagesFilter}"));

        async Task<List<double>> SequentialAsync(Func<Task<JsonNode>> call)
        {
            await call(); // warm: the first call of a kind pays for JIT and cold caches
            var list = new List<double>();
            var before = cpu.Sample();
            for (var i = 0; i < Samples; i++) list.Add(await TimeAsync(call));
            // CPU per call (the server's and this client's parsing in one process, and PostgreSQL's): unlike the
            // times, the machine's other load does not inflate it.
            var used = cpu.Sample() - before;
            Console.WriteLine($"    {Samples} calls: CPU per call {used.ProcessMs / Samples:F1} ms .NET + {used.PostgresMs / Samples:F1} ms PostgreSQL");
            return list;
        }
    }

    private static string LazyFilter(int timelineLimit) =>
        $"{{\"room\":{{\"timeline\":{{\"limit\":{timelineLimit}}},\"state\":{{\"lazy_load_members\":true}}}}}}";

    private static async Task<string> CreateRoomAsync(HttpClient http, (string UserId, string Token, string Url) creator) =>
        (await BenchHttp.SendAsync(http, HttpMethod.Post, $"{creator.Url}{V3}/createRoom", creator.Token, new JsonObject { ["preset"] = "public_chat" }))
        ["room_id"]!.GetValue<string>();

    private static async Task<double> TimeAsync(Func<Task<JsonNode>> call)
    {
        var started = Stopwatch.GetTimestamp();
        await call();
        return Stopwatch.GetElapsedTime(started).TotalMilliseconds;
    }

    private static void Report(string what, List<double> big, List<double> small)
    {
        big.Sort();
        small.Sort();
        var (b, s) = (Stats.Percentile(big, 50), Stats.Percentile(small, 50));
        Console.WriteLine($"  {what}: big room median {b:F1} ms (max {big[^1]:F1}), small room ({SmallRoomMembers}) median {s:F1} ms (max {small[^1]:F1}); ratio {b / s:F1}x");
    }
}

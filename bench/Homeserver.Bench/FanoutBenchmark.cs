using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace Homeserver.Bench;

/// <summary>
/// Issue 4's benchmark: one room of N members on two silos, every member long-polling /sync. One member sends a
/// message, starts typing, and sends a read receipt, round after round; for each action, the time from its request
/// starting to each member's /sync returning with it. The plain message is the baseline in the same run.
/// </summary>
public static class FanoutBenchmark
{
    private const string V3 = "/_matrix/client/v3";

    private sealed class Action(string kind, string marker)
    {
        public readonly string Kind = kind;
        public readonly string Marker = marker;
        public long Started;
        public readonly ConcurrentDictionary<int, double> Delivered = new();
    }

    public static async Task RunAsync(int members, int rounds)
    {
        await using var cluster = await BenchCluster.StartAsync(2, new Dictionary<string, string?> { ["Homeserver:EnablePresence"] = "false" });
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = members * 2 + 16, PooledConnectionLifetime = TimeSpan.FromMinutes(30) })
        { Timeout = TimeSpan.FromSeconds(90) };

        Console.WriteLine($"setting up {members} members...");
        var users = new List<(string UserId, string Token, string Url)>();
        for (var i = 0; i < members; i++)
        {
            var url = cluster.Urls[i % 2];
            var r = await BenchHttp.SendAsync(http, HttpMethod.Post, $"{url}{V3}/register", null,
                new JsonObject { ["username"] = $"fan{i}", ["password"] = "benchmark-password", ["auth"] = new JsonObject { ["type"] = "m.login.dummy" } });
            users.Add((r["user_id"]!.GetValue<string>(), r["access_token"]!.GetValue<string>(), url));
        }
        var actor = users[0];
        var roomId = (await BenchHttp.SendAsync(http, HttpMethod.Post, $"{actor.Url}{V3}/createRoom", actor.Token, new JsonObject { ["preset"] = "public_chat" }))["room_id"]!.GetValue<string>();
        var room = Uri.EscapeDataString(roomId);
        foreach (var u in users.Skip(1)) await BenchHttp.SendAsync(http, HttpMethod.Post, $"{u.Url}{V3}/join/{room}", u.Token, new JsonObject());

        Action? current = null;
        using var stop = new CancellationTokenSource();
        var ready = new CountdownEvent(members);
        var pollers = users.Select((u, index) => Task.Run(async () =>
        {
            var since = (await BenchHttp.SendAsync(http, HttpMethod.Get, $"{u.Url}{V3}/sync?timeout=0", u.Token, null))["next_batch"]!.GetValue<string>();
            ready.Signal();
            while (!stop.IsCancellationRequested)
            {
                JsonNode sync;
                try { sync = await BenchHttp.SendAsync(http, HttpMethod.Get, $"{u.Url}{V3}/sync?timeout=30000&since={since}", u.Token, null, stop.Token); }
                catch (OperationCanceledException) { return; }
                var at = Stopwatch.GetTimestamp();
                since = sync["next_batch"]!.GetValue<string>();
                var action = Volatile.Read(ref current);
                if (action is null) continue;
                var joined = sync["rooms"]?["join"]?[roomId];
                if (joined is not null && Contains(joined, action))
                    action.Delivered.TryAdd(index, (at - action.Started) * 1000.0 / Stopwatch.Frequency);
            }
        })).ToList();
        ready.Wait(TimeSpan.FromSeconds(60));
        await Task.Delay(500);

        var results = new Dictionary<string, List<double>>{ ["message"] = [], ["typing"] = [], ["receipt"] = [] };
        var allMembers = new Dictionary<string, List<double>> { ["message"] = [], ["typing"] = [], ["receipt"] = [] };
        var notifiers = cluster.Silos.Select(s => s.Services.GetRequiredService<Homeserver.Streams.StreamNotifier>()).ToList();
        async Task MeasureAsync(Action action, Func<Task<string?>> act)
        {
            // Every member's next long-poll is parked again (the previous action's wave has settled).
            var settle = DateTime.UtcNow.AddSeconds(5);
            while (notifiers.Sum(n => n.WaiterCount) < members && DateTime.UtcNow < settle) await Task.Delay(1);
            action.Started = Stopwatch.GetTimestamp();
            Volatile.Write(ref current, action);
            var marker = await act();
            if (marker is not null) throw new InvalidOperationException("marker must be known up front");
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (action.Delivered.Count < members && DateTime.UtcNow < deadline) await Task.Delay(1);
            if (action.Delivered.Count < members) Console.WriteLine($"  {action.Kind} {action.Marker}: only {action.Delivered.Count}/{members} delivered");
            results[action.Kind].AddRange(action.Delivered.Values);
            if (action.Delivered.Count == members) allMembers[action.Kind].Add(action.Delivered.Values.Max());
            Volatile.Write(ref current, null);
            await Task.Delay(20);
        }

        // The first rounds are not measured: they run while the JIT is still compiling the paths (a server runs for
        // longer than a benchmark), which put their waves among a run's slowest.
        var cpu = new CpuMeter(cluster.Postgres.DataDirectory);
        var measured = default(CpuMeter.Usage);
        var warmupRounds = int.TryParse(Environment.GetEnvironmentVariable("BENCH_WARMUP_ROUNDS"), out var w) ? w : 40;
        for (var round = -warmupRounds; round < rounds; round++)
        {
            if (round == 0)
            {
                foreach (var kind in results.Keys) { results[kind].Clear(); allMembers[kind].Clear(); }
                measured = cpu.Sample();
            }
            var body = $"fanout {round}";
            string eventId = "";
            await MeasureAsync(new Action("message", body), async () =>
            {
                eventId = (await BenchHttp.SendAsync(http, HttpMethod.Put, $"{actor.Url}{V3}/rooms/{room}/send/m.room.message/fan{round}", actor.Token,
                    new JsonObject { ["msgtype"] = "m.text", ["body"] = body }))["event_id"]!.GetValue<string>();
                return null;
            });
            await MeasureAsync(new Action("typing", "start"), async () =>
            {
                await BenchHttp.SendAsync(http, HttpMethod.Put, $"{actor.Url}{V3}/rooms/{room}/typing/{Uri.EscapeDataString(actor.UserId)}", actor.Token,
                    new JsonObject { ["typing"] = true, ["timeout"] = 30000 });
                return null;
            });
            var receipt = new Action("receipt", eventId);
            await MeasureAsync(receipt, async () =>
            {
                await BenchHttp.SendAsync(http, HttpMethod.Post, $"{actor.Url}{V3}/rooms/{room}/receipt/m.read/{Uri.EscapeDataString(eventId)}", actor.Token, new JsonObject());
                return null;
            });
            await BenchHttp.SendAsync(http, HttpMethod.Put, $"{actor.Url}{V3}/rooms/{room}/typing/{Uri.EscapeDataString(actor.UserId)}", actor.Token,
                new JsonObject { ["typing"] = false });
            await Task.Delay(50);
        }
        stop.Cancel();
        Console.WriteLine($"measured rounds: {(cpu.Sample() - measured).Summary()}");

        Console.WriteLine($"fan-out to {members} members long-polling /sync on 2 silos, {rounds} rounds after {warmupRounds} unmeasured (from the action's request starting to each member's /sync returning with it):");
        foreach (var kind in new[] { "message", "typing", "receipt" })
        {
            var all = allMembers[kind];
            all.Sort();
            Console.WriteLine($"  {kind,-8} per delivery: {Stats.Summary(results[kind])}; until all {members} had it: p50 {Stats.Percentile(all, 50):F2} ms, p99 {Stats.Percentile(all, 99):F2} ms");
        }
    }

    private static bool Contains(JsonNode joined, Action action) => action.Kind switch
    {
        "message" => joined["timeline"]?["events"]?.AsArray().Any(e => e?["content"]?["body"]?.GetValue<string>() == action.Marker) == true,
        "typing" => joined["ephemeral"]?["events"]?.AsArray().Any(e => e?["type"]?.GetValue<string>() == "m.typing"
                        && e["content"]?["user_ids"]?.AsArray().Count > 0) == true,
        "receipt" => joined["ephemeral"]?["events"]?.AsArray().Any(e => e?["type"]?.GetValue<string>() == "m.receipt"
                        && e["content"]?[action.Marker] is not null) == true,
        _ => false,
    };

}

using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Npgsql;

namespace Homeserver.Bench;

/// <summary>
/// Issue 3's benchmark, in one run on one PostgreSQL: a thin baseline endpoint (parse the JSON body, insert one row,
/// commit, answer) and the real <c>PUT /rooms/{id}/send</c> under the same load (many users in many rooms, concurrent
/// connections on loopback); then send→received latency: from a send returning on silo 0 to a second client's pending
/// /sync on silo 1 returning with it.
/// </summary>
public static class SendBenchmark
{
    private const string V3 = "/_matrix/client/v3";

    public static async Task RunAsync(TimeSpan duration, int connections, int users, int rooms, int latencySamples)
    {
        await using var cluster = await BenchCluster.StartAsync(2, map: MapThinEndpoint);
        await using (var db = NpgsqlDataSource.Create(cluster.ConnectionString))
        await using (var create = db.CreateCommand("CREATE TABLE IF NOT EXISTS bench_messages (id bigserial PRIMARY KEY, room text NOT NULL, body text NOT NULL)"))
            await create.ExecuteNonQueryAsync();

        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = connections, PooledConnectionLifetime = TimeSpan.FromMinutes(10) })
        { Timeout = TimeSpan.FromSeconds(60) };

        var (accounts, senders) = await SetUpSendersAsync(http, cluster, users, rooms);

        var cpu = new CpuMeter(cluster.Postgres.DataDirectory);
        async Task Thin(int n, int worker)
        {
            var s = senders[worker % senders.Count];
            using var content = new StringContent(Body, Encoding.UTF8, "application/json");
            using var response = await http.PostAsync($"{cluster.Urls[s.Silo]}/bench/thin/{Uri.EscapeDataString(s.Room)}", content);
            response.EnsureSuccessStatusCode();
        }
        // Both paths are warmed up first (unmeasured, 10 s each), so that the measured phase runs optimised code rather than
        // the JIT's first tiers: a server runs for longer than ten seconds.
        await LoadAsync(Warmup, connections, Thin);
        var cpuBefore = cpu.Sample();
        var thin = await LoadAsync(duration, connections, Thin);
        var thinCpu = cpu.Sample() - cpuBefore;
        Console.WriteLine($"baseline thin endpoint (parse, insert one row, commit): {thin.Rate:F0} req/s, {Stats.Summary(thin.Latencies)}; {thinCpu.PerRequest(thin.Count)}");

        await LoadAsync(Warmup, connections, Sends(http, cluster, senders, "warm"));
        long CatchUps() => cluster.Silos.Sum(s => s.Services.GetRequiredService<Homeserver.Streams.SiloStreamReader>().CatchUps);
        var catchUpsBefore = CatchUps();
        cpuBefore = cpu.Sample();
        var send = await LoadAsync(duration, connections, Sends(http, cluster, senders, "run"));
        var sendCpu = cpu.Sample() - cpuBefore;
        Console.WriteLine($"PUT /send ({users} users, {rooms} rooms, {connections} connections): {send.Rate:F0} messages/s, {Stats.Summary(send.Latencies)}; {sendCpu.PerRequest(send.Count)}; readers caught up from the log {CatchUps() - catchUpsBefore} times");
        Console.WriteLine($"ratio send/thin: {send.Rate / thin.Rate:F2}x");

        var latency = await SendToReceivedAsync(http, cluster, accounts, latencySamples);
        Console.WriteLine($"send->received (send returns on silo 0 -> pending /sync on silo 1 returns with it): {Stats.Summary(latency)}");
    }

    private const string Body = "{\"msgtype\":\"m.text\",\"body\":\"benchmark message with a little text in it\"}";

    /// <summary>Registers <paramref name="users"/> users alternately on the two silos and puts them in
    /// <paramref name="rooms"/> rooms (user i sends to room i mod rooms); returns the accounts and each user's sending seat.</summary>
    internal static async Task<(List<(string UserId, string Token, int Silo)> Accounts, List<(string Token, int Silo, string Room)> Senders)> SetUpSendersAsync(
        HttpClient http, BenchCluster cluster, int users, int rooms)
    {
        Console.WriteLine($"setting up {users} users in {rooms} rooms...");
        var accounts = new List<(string UserId, string Token, int Silo)>();
        for (var i = 0; i < users; i++)
        {
            var silo = i % 2;
            var r = await BenchHttp.SendAsync(http, HttpMethod.Post, cluster.Urls[silo] + $"{V3}/register", null,
                new JsonObject { ["username"] = $"bench{i}", ["password"] = "benchmark-password", ["auth"] = new JsonObject { ["type"] = "m.login.dummy" } });
            accounts.Add((r["user_id"]!.GetValue<string>(), r["access_token"]!.GetValue<string>(), silo));
        }
        var roomIds = new List<string>();
        for (var i = 0; i < rooms; i++)
        {
            var owner = accounts[i % users];
            var r = await BenchHttp.SendAsync(http, HttpMethod.Post, cluster.Urls[owner.Silo] + $"{V3}/createRoom", owner.Token, new JsonObject { ["preset"] = "public_chat" });
            roomIds.Add(r["room_id"]!.GetValue<string>());
        }
        // Every user joins the rooms they will send to (user i sends to rooms i, i+users, ...).
        var senders = new List<(string Token, int Silo, string Room)>();
        for (var i = 0; i < users; i++)
        {
            var room = roomIds[i % rooms];
            if (i >= rooms)
                await BenchHttp.SendAsync(http, HttpMethod.Post, cluster.Urls[accounts[i].Silo] + $"{V3}/join/{Uri.EscapeDataString(room)}", accounts[i].Token, new JsonObject());
            senders.Add((accounts[i].Token, accounts[i].Silo, room));
        }
        return (accounts, senders);
    }

    /// <summary>One message per call from the worker's seat, with a transaction id unique to <paramref name="phase"/>.</summary>
    internal static Func<int, int, Task> Sends(HttpClient http, BenchCluster cluster, List<(string Token, int Silo, string Room)> senders, string phase) =>
        async (n, worker) =>
        {
            var s = senders[worker % senders.Count];
            using var request = new HttpRequestMessage(HttpMethod.Put, $"{cluster.Urls[s.Silo]}{V3}/rooms/{Uri.EscapeDataString(s.Room)}/send/m.room.message/{phase}-w{worker}-{n}");
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", s.Token);
            request.Content = new StringContent(Body, Encoding.UTF8, "application/json");
            using var response = await http.SendAsync(request);
            response.EnsureSuccessStatusCode();
        };

    internal static void MapThinEndpoint(WebApplication app) =>
        app.MapPost("/bench/thin/{room}", async (HttpContext context, string room, NpgsqlDataSource db) =>
        {
            var json = await JsonNode.ParseAsync(context.Request.Body);
            var text = json?["body"]?.GetValue<string>() ?? "";
            await using var cmd = db.CreateCommand("INSERT INTO bench_messages (room, body) VALUES ($1, $2) RETURNING id");
            cmd.Parameters.AddWithValue(room);
            cmd.Parameters.AddWithValue(text);
            var id = (long)(await cmd.ExecuteScalarAsync())!;
            return Results.Json(new { event_id = $"${id}" });
        })
        // The baseline reads its own body, as it always has: the client input boundary leaves it alone.
        .WithMetadata(Homeserver.Api.Http.ClientBodyPolicy.Ignored);

    internal static readonly TimeSpan Warmup = TimeSpan.FromSeconds(int.TryParse(Environment.GetEnvironmentVariable("BENCH_WARMUP_SECONDS"), out var w) ? w : 10);

    internal static async Task<(double Rate, List<double> Latencies, long Count)> LoadAsync(TimeSpan duration, int connections, Func<int, int, Task> call)
    {
        var latencies = new ConcurrentBag<double>();
        long done = 0;
        var stop = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, connections).Select(async worker =>
        {
            for (var n = 0; stop.Elapsed < duration; n++)
            {
                var t = Stopwatch.GetTimestamp();
                await call(n, worker);
                latencies.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
                Interlocked.Increment(ref done);
            }
        }));
        return (done / stop.Elapsed.TotalSeconds, latencies.ToList(), done);
    }

    private static async Task<List<double>> SendToReceivedAsync(HttpClient http, BenchCluster cluster, List<(string UserId, string Token, int Silo)> accounts, int samples)
    {
        var sender = accounts.First(a => a.Silo == 0);
        var receiver = accounts.First(a => a.Silo == 1);
        var room = (await BenchHttp.SendAsync(http, HttpMethod.Post, cluster.Urls[0] + $"{V3}/createRoom", sender.Token,
            new JsonObject { ["preset"] = "private_chat", ["invite"] = new JsonArray(receiver.UserId) }))["room_id"]!.GetValue<string>();
        await BenchHttp.SendAsync(http, HttpMethod.Post, cluster.Urls[1] + $"{V3}/join/{Uri.EscapeDataString(room)}", receiver.Token, new JsonObject());
        var since = (await BenchHttp.SendAsync(http, HttpMethod.Get, cluster.Urls[1] + $"{V3}/sync?timeout=0", receiver.Token, null))["next_batch"]!.GetValue<string>();
        var latencies = new List<double>(samples);
        for (var i = 0; i < samples; i++)
        {
            var poll = BenchHttp.SendAsync(http, HttpMethod.Get, cluster.Urls[1] + $"{V3}/sync?timeout=30000&since={since}", receiver.Token, null);
            await Task.Delay(3); // let the long-poll park
            var received = 0L;
            var watch = poll.ContinueWith(_ => received = Stopwatch.GetTimestamp(), TaskContinuationOptions.ExecuteSynchronously);
            using (var request = new HttpRequestMessage(HttpMethod.Put, $"{cluster.Urls[0]}{V3}/rooms/{Uri.EscapeDataString(room)}/send/m.room.message/lat{i}"))
            {
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", sender.Token);
                request.Content = new StringContent("{\"msgtype\":\"m.text\",\"body\":\"ping\"}", Encoding.UTF8, "application/json");
                using var response = await http.SendAsync(request);
                response.EnsureSuccessStatusCode();
            }
            var sent = Stopwatch.GetTimestamp();
            var sync = await poll;
            await watch;
            since = sync["next_batch"]!.GetValue<string>();
            var events = sync["rooms"]?["join"]?[room]?["timeline"]?["events"]?.AsArray();
            if (events is null || events.Count == 0) { i--; continue; } // woke for something else; measure again
            // The receiver can get the event before the sender's response arrives: that counts as zero.
            latencies.Add(Math.Max(0, (received - sent) * 1000.0 / Stopwatch.Frequency));
        }
        return latencies;
    }
}

using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Npgsql;

namespace Homeserver.Bench;

/// <summary>
/// Issue 13's one-sender benchmark: one user sends into one room through one front end from 1, 10 and 64
/// connections, each connection one request at a time (as <c>wrk -cN</c> with one URL and one token), beside the
/// send benchmark's thin endpoint (parse the body, insert one row, commit) at the same connection count in the same
/// round. Rounds alternate which of the two runs first; the ratios are per round, and their medians are reported.
/// With <c>baseline settings</c> (<c>Key=Value;...</c>) a second cluster with those settings runs the same sends in
/// each round too (a before/after pair in one run: e.g. <c>Homeserver:StreamWriterSparePositions=0</c>).
/// </summary>
public static class SendLatencyBenchmark
{
    private const string V3 = "/_matrix/client/v3";
    private const string Body = "{\"msgtype\":\"m.text\",\"body\":\"benchmark message with a little text in it\"}";

    public static async Task RunAsync(TimeSpan duration, int rounds, int[] connectionCounts, string? baselineSettings)
    {
        // Two silos by default (a send's hops cross silos as in a cluster); BENCH_SILOS=1 is the embedded default's shape,
        // one silo with its front end, which is how the issue measured its baseline.
        var silos = int.TryParse(Environment.GetEnvironmentVariable("BENCH_SILOS"), out var n) && n > 0 ? n : 2;
        Console.WriteLine($"silos: {silos}");
        await using var cluster = await BenchCluster.StartAsync(silos, map: SendBenchmark.MapThinEndpoint);
        await using (var db = NpgsqlDataSource.Create(cluster.ConnectionString))
        await using (var create = db.CreateCommand("CREATE TABLE IF NOT EXISTS bench_messages (id bigserial PRIMARY KEY, room text NOT NULL, body text NOT NULL)"))
            await create.ExecuteNonQueryAsync();
        await using var baseline = baselineSettings is null ? null : await BenchCluster.StartAsync(silos,
            baselineSettings.Split(';', StringSplitOptions.RemoveEmptyEntries).Select(kv => kv.Split('=', 2)).ToDictionary(kv => kv[0], kv => (string?)kv[1]));
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = connectionCounts.Max(), PooledConnectionLifetime = TimeSpan.FromMinutes(30) })
        { Timeout = TimeSpan.FromSeconds(60) };

        var thinUrl = "";
        async Task<(string Url, string Token)> SetUpAsync(BenchCluster target)
        {
            // The sender and the room live on silo 0's front end, where every request goes.
            var url = target.Urls[0];
            var account = await BenchHttp.SendAsync(http, HttpMethod.Post, url + $"{V3}/register", null,
                new JsonObject { ["username"] = "sender", ["password"] = "benchmark-password", ["auth"] = new JsonObject { ["type"] = "m.login.dummy" } });
            var token = account["access_token"]!.GetValue<string>();
            var room = (await BenchHttp.SendAsync(http, HttpMethod.Post, url + $"{V3}/createRoom", token, new JsonObject { ["preset"] = "public_chat" }))["room_id"]!.GetValue<string>();
            if (target == cluster) thinUrl = $"{url}/bench/thin/{Uri.EscapeDataString(room)}";
            return ($"{url}{V3}/rooms/{Uri.EscapeDataString(room)}/send/m.room.message/", token);
        }
        var (sendUrl, token) = await SetUpAsync(cluster);
        var (baselineUrl, baselineToken) = baseline is null ? ("", "") : await SetUpAsync(baseline);

        async Task Thin(int n, int worker)
        {
            using var content = new StringContent(Body, Encoding.UTF8, "application/json");
            using var response = await http.PostAsync(thinUrl, content);
            response.EnsureSuccessStatusCode();
        }
        Func<int, int, Task> Send(string phase, bool onBaseline = false) => async (n, worker) =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Put, $"{(onBaseline ? baselineUrl : sendUrl)}{phase}-w{worker}-{n}");
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", onBaseline ? baselineToken : token);
            request.Content = new StringContent(Body, Encoding.UTF8, "application/json");
            using var response = await http.SendAsync(request);
            response.EnsureSuccessStatusCode();
        };

        // Warmed up once, at the largest connection count (so every connection of the pool is open), unmeasured.
        await SendBenchmark.LoadAsync(SendBenchmark.Warmup, connectionCounts.Max(), Thin);
        await SendBenchmark.LoadAsync(SendBenchmark.Warmup, connectionCounts.Max(), Send("warm"));
        if (baseline is not null) await SendBenchmark.LoadAsync(SendBenchmark.Warmup, connectionCounts.Max(), Send("warm", onBaseline: true));

        var cpu = new CpuMeter(cluster.Postgres.DataDirectory);
        using var writers = new WriterMeter();
        var ratios = connectionCounts.ToDictionary(c => c, _ => new List<double>());
        var rates = connectionCounts.ToDictionary(c => c, _ => (Thin: new List<double>(), Send: new List<double>()));
        var baselineRatios = connectionCounts.ToDictionary(c => c, _ => new List<double>());
        for (var round = 1; round <= rounds; round++)
        {
            foreach (var c in connectionCounts)
            {
                (double Rate, List<double> Latencies, long Count) thin = (0, [], 0), send = (0, [], 0), before = (0, [], 0);
                string thinCpu = "", sendCpu = "", sendWriter = "";
                async Task RunThin() { var before = cpu.Sample(); thin = await SendBenchmark.LoadAsync(duration, c, Thin); thinCpu = (cpu.Sample() - before).PerRequest(thin.Count); }
                async Task RunSend()
                {
                    var before = cpu.Sample();
                    writers.Reset();
                    send = await SendBenchmark.LoadAsync(duration, c, Send($"r{round}c{c}"));
                    sendCpu = (cpu.Sample() - before).PerRequest(send.Count);
                    sendWriter = writers.Describe();
                }
                async Task RunBaseline() { if (baseline is not null) before = await SendBenchmark.LoadAsync(duration, c, Send($"r{round}c{c}", onBaseline: true)); }
                if (round % 2 == 1) { await RunThin(); await RunSend(); await RunBaseline(); }
                else { await RunBaseline(); await RunSend(); await RunThin(); }
                var ratio = send.Rate / thin.Rate;
                ratios[c].Add(ratio);
                rates[c].Thin.Add(thin.Rate);
                rates[c].Send.Add(send.Rate);
                Console.WriteLine($"round {round} -c{c}: thin {thin.Rate:F0} req/s ({Describe(thin.Latencies)}; {thinCpu}); " +
                                  $"send {send.Rate:F0} messages/s ({Describe(send.Latencies)}; {sendCpu}; {sendWriter}); ratio {ratio:F2}x" +
                                  (baseline is null ? "" : $"; baseline settings: send {before.Rate:F0} messages/s ({Describe(before.Latencies)}), ratio {before.Rate / thin.Rate:F2}x"));
                if (baseline is not null) baselineRatios[c].Add(before.Rate / thin.Rate);
            }
        }
        foreach (var c in connectionCounts)
            Console.WriteLine($"median -c{c}: thin {Median(rates[c].Thin):F0} req/s, send {Median(rates[c].Send):F0} messages/s, " +
                              $"ratio {Median(ratios[c]):F2}x (per round: {string.Join(", ", ratios[c].Select(r => r.ToString("F2")))})" +
                              (baseline is null ? "" : $"; with the baseline settings {Median(baselineRatios[c]):F2}x (per round: {string.Join(", ", baselineRatios[c].Select(r => r.ToString("F2")))})"));
    }

    private static string Describe(List<double> latencies) =>
        latencies.Count == 0 ? "no requests" : $"mean {latencies.Average():F3} ms, {Stats.Summary(latencies)}";

    private static double Median(List<double> values)
    {
        var sorted = values.OrderBy(v => v).ToList();
        return sorted.Count == 0 ? double.NaN : sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }
}

using System.Net;
using System.Text.Json.Nodes;

namespace Homeserver.Bench;

/// <summary>
/// Issue 12's send benchmark: <c>PUT /send</c> under the send benchmark's load (set up as <c>send</c> sets up its users
/// and rooms) on three clusters in one run: search indexing off and no pushers (the baseline), indexing on, and
/// indexing on with one HTTP pusher per member (delivering to a gateway this process serves on loopback). Rounds run
/// the three in turn, so the machine's noise falls on all of them; the ratios are to the baseline of the same round.
/// </summary>
public static class SendFeaturesBenchmark
{
    private const string V3 = "/_matrix/client/v3";

    public static async Task RunAsync(TimeSpan duration, int connections, int users, int rooms, int rounds)
    {
        var gateway = await PushGateway.StartAsync();
        await using var plain = await BenchCluster.StartAsync(2, new Dictionary<string, string?> { ["Homeserver:Search:IndexEvents"] = "false" });
        await using var indexed = await BenchCluster.StartAsync(2, new Dictionary<string, string?> { ["Homeserver:Search:IndexEvents"] = "true" });
        await using var pushed = await BenchCluster.StartAsync(2, new Dictionary<string, string?>
        {
            ["Homeserver:Search:IndexEvents"] = "true",
            ["Homeserver:Push:AllowedNetworks:0"] = "127.0.0.0/8",
        });
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = connections }) { Timeout = TimeSpan.FromSeconds(60) };
        var (_, plainSenders) = await SendBenchmark.SetUpSendersAsync(http, plain, users, rooms);
        var (_, indexedSenders) = await SendBenchmark.SetUpSendersAsync(http, indexed, users, rooms);
        var (pushedAccounts, pushedSenders) = await SendBenchmark.SetUpSendersAsync(http, pushed, users, rooms);
        for (var i = 0; i < pushedAccounts.Count; i++)
            await BenchHttp.SendAsync(http, HttpMethod.Post, pushed.Urls[pushedAccounts[i].Silo] + $"{V3}/pushers/set", pushedAccounts[i].Token, new JsonObject
            {
                ["kind"] = "http", ["app_id"] = "bench.app", ["pushkey"] = $"key{i}", ["app_display_name"] = "bench",
                ["device_display_name"] = "bench", ["lang"] = "en", ["data"] = new JsonObject { ["url"] = gateway.Url },
            });
        var setups = new (string Name, BenchCluster Cluster, List<(string Token, int Silo, string Room)> Senders)[]
        {
            ("no indexing, no pushers", plain, plainSenders), ("indexing", indexed, indexedSenders), ("indexing and a pusher per member", pushed, pushedSenders),
        };
        foreach (var (_, cluster, senders) in setups)
            await SendBenchmark.LoadAsync(SendBenchmark.Warmup, connections, SendBenchmark.Sends(http, cluster, senders, "warm"));

        var ratios = new List<double>[] { [], [] };
        for (var round = 1; round <= rounds; round++)
        {
            var rates = new double[setups.Length];
            var line = new List<string>();
            // Each round starts with a different setup, so none always runs first after the previous round's last.
            for (var k = 0; k < setups.Length; k++)
            {
                var i = (k + round - 1) % setups.Length;
                var pushesBefore = gateway.Received;
                var result = await SendBenchmark.LoadAsync(duration, connections, SendBenchmark.Sends(http, setups[i].Cluster, setups[i].Senders, $"r{round}"));
                rates[i] = result.Rate;
                var pushes = i == 2 ? $", {gateway.Received - pushesBefore} pushes for {result.Count} messages" : "";
                line.Add($"{setups[i].Name}: {result.Rate:F0} messages/s ({Stats.Summary(result.Latencies)}){pushes}");
            }
            ratios[0].Add(rates[1] / rates[0]);
            ratios[1].Add(rates[2] / rates[0]);
            Console.WriteLine($"round {round}: {string.Join("; ", line)}; ratios {rates[1] / rates[0]:F2}x, {rates[2] / rates[0]:F2}x");
        }
        foreach (var r in ratios) r.Sort();
        Console.WriteLine($"median ratios to the baseline over {rounds} rounds: indexing {Stats.Percentile(ratios[0], 50):F2}x, " +
                          $"indexing and pushers {Stats.Percentile(ratios[1], 50):F2}x");
        await gateway.DisposeAsync();
    }

    /// <summary>A push gateway on loopback that accepts every notification at once and counts them.</summary>
    private sealed class PushGateway(WebApplication app, string url) : IAsyncDisposable
    {
        private long _received;
        public string Url { get; } = url;
        public long Received => Interlocked.Read(ref _received);

        public static async Task<PushGateway> StartAsync()
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
            var app = builder.Build();
            PushGateway? gateway = null;
            app.MapPost("/_matrix/push/v1/notify", () =>
            {
                Interlocked.Increment(ref gateway!._received);
                return Results.Json(new JsonObject { ["rejected"] = new JsonArray() });
            });
            await app.StartAsync();
            gateway = new PushGateway(app, $"{app.Urls.Single()}/_matrix/push/v1/notify");
            return gateway;
        }

        public async ValueTask DisposeAsync() => await app.DisposeAsync();
    }
}

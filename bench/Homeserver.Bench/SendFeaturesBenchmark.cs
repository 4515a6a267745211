using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace Homeserver.Bench;

/// <summary>
/// Issue 12's send benchmark: <c>PUT /send</c> under the send benchmark's load on a cluster with search indexing on
/// and one HTTP pusher per member (delivering to a gateway this process serves on loopback), beside the same load on
/// a cluster with indexing off and no pushers, in alternating rounds so the machine's noise falls on both.
/// </summary>
public static class SendFeaturesBenchmark
{
    private const string V3 = "/_matrix/client/v3";

    public static async Task RunAsync(TimeSpan duration, int connections, int users, int rooms, int rounds)
    {
        var gateway = await PushGateway.StartAsync();
        await using var plain = await BenchCluster.StartAsync(2, new Dictionary<string, string?> { ["Homeserver:Search:IndexEvents"] = "false" });
        await using var featured = await BenchCluster.StartAsync(2, new Dictionary<string, string?>
        {
            ["Homeserver:Search:IndexEvents"] = "true",
            ["Homeserver:Push:AllowedNetworks:0"] = "127.0.0.0/8",
        });
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = connections }) { Timeout = TimeSpan.FromSeconds(60) };
        Console.WriteLine($"setting up {users} users in {rooms} rooms on both clusters...");
        var plainSenders = await SetUpAsync(http, plain, users, rooms, pusherUrl: null);
        var featuredSenders = await SetUpAsync(http, featured, users, rooms, gateway.Url);

        var body = "{\"msgtype\":\"m.text\",\"body\":\"benchmark message with a little text in it\"}";
        Func<int, int, Task> Sender(BenchCluster cluster, List<(string Token, int Silo, string Room)> senders, string run) => async (n, worker) =>
        {
            var s = senders[worker % senders.Count];
            using var request = new HttpRequestMessage(HttpMethod.Put,
                $"{cluster.Urls[s.Silo]}{V3}/rooms/{Uri.EscapeDataString(s.Room)}/send/m.room.message/{run}-{worker}-{n}");
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", s.Token);
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
            using var response = await http.SendAsync(request);
            response.EnsureSuccessStatusCode();
        };
        await SendBenchmark.LoadAsync(TimeSpan.FromSeconds(10), connections, Sender(plain, plainSenders, "warm"));
        await SendBenchmark.LoadAsync(TimeSpan.FromSeconds(10), connections, Sender(featured, featuredSenders, "warm"));
        var ratios = new List<double>();
        for (var round = 1; round <= rounds; round++)
        {
            var without = await SendBenchmark.LoadAsync(duration, connections, Sender(plain, plainSenders, $"r{round}"));
            var pushesBefore = gateway.Received;
            var with = await SendBenchmark.LoadAsync(duration, connections, Sender(featured, featuredSenders, $"r{round}"));
            // Deliveries trail the sends by up to a pusher's batch; give them a moment before counting.
            await Task.Delay(TimeSpan.FromSeconds(2));
            ratios.Add(with.Rate / without.Rate);
            Console.WriteLine($"round {round}: without indexing and pushers {without.Rate:F0} messages/s ({Stats.Summary(without.Latencies)}); " +
                              $"with {with.Rate:F0} messages/s ({Stats.Summary(with.Latencies)}), {gateway.Received - pushesBefore} pushes delivered for {with.Count} messages; ratio {with.Rate / without.Rate:F2}x");
        }
        ratios.Sort();
        Console.WriteLine($"median ratio with/without over {rounds} rounds: {Stats.Percentile(ratios, 50):F2}x");
        await gateway.DisposeAsync();
    }

    /// <summary>The send benchmark's shape: users on alternating silos, each room with two members who send to it; with
    /// <paramref name="pusherUrl"/>, every user has an HTTP pusher to it.</summary>
    private static async Task<List<(string Token, int Silo, string Room)>> SetUpAsync(HttpClient http, BenchCluster cluster, int users, int rooms,
        string? pusherUrl)
    {
        var accounts = new List<(string UserId, string Token, int Silo)>();
        for (var i = 0; i < users; i++)
        {
            var silo = i % 2;
            var r = await BenchHttp.SendAsync(http, HttpMethod.Post, cluster.Urls[silo] + $"{V3}/register", null,
                new JsonObject { ["username"] = $"bench{i}", ["password"] = "benchmark-password", ["auth"] = new JsonObject { ["type"] = "m.login.dummy" } });
            accounts.Add((r["user_id"]!.GetValue<string>(), r["access_token"]!.GetValue<string>(), silo));
            if (pusherUrl is not null)
                await BenchHttp.SendAsync(http, HttpMethod.Post, cluster.Urls[silo] + $"{V3}/pushers/set", accounts[^1].Token, new JsonObject
                {
                    ["kind"] = "http", ["app_id"] = "bench.app", ["pushkey"] = $"key{i}", ["app_display_name"] = "bench",
                    ["device_display_name"] = "bench", ["lang"] = "en", ["data"] = new JsonObject { ["url"] = pusherUrl },
                });
        }
        var roomIds = new List<string>();
        for (var i = 0; i < rooms; i++)
        {
            var owner = accounts[i % users];
            roomIds.Add((await BenchHttp.SendAsync(http, HttpMethod.Post, cluster.Urls[owner.Silo] + $"{V3}/createRoom", owner.Token,
                new JsonObject { ["preset"] = "public_chat" }))["room_id"]!.GetValue<string>());
        }
        var senders = new List<(string Token, int Silo, string Room)>();
        for (var i = 0; i < users; i++)
        {
            var room = roomIds[i % rooms];
            if (i >= rooms)
                await BenchHttp.SendAsync(http, HttpMethod.Post, cluster.Urls[accounts[i].Silo] + $"{V3}/join/{Uri.EscapeDataString(room)}", accounts[i].Token, new JsonObject());
            senders.Add((accounts[i].Token, accounts[i].Silo, room));
        }
        return senders;
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

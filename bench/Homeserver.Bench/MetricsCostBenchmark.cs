namespace Homeserver.Bench;

/// <summary>
/// Issue 11's benchmark: what metrics cost the send path. 2-silo clusters in this process, each over a private
/// PostgreSQL of its own: one with <c>Homeserver:Metrics:Enabled=false</c>, one with metrics on, and one more per
/// variant asked for (metrics on with some meters left out through <c>Homeserver:Metrics:ExcludeMeters</c>, to find
/// which meter costs what), all set up and warmed up alike. Then the send load (<see cref="SendBenchmark"/>'s, many
/// users in many rooms) runs against each in turn, in rounds whose order rotates, so that drift and other load on the
/// machine fall on every side; while a metrics cluster is loaded its two silos are scraped every
/// <see cref="ScrapePeriod"/> (more often than Prometheus' usual 15 s), so collection and export are in the price too.
/// Reports every run, the medians of rate and CPU per message, and each side's ratio to metrics off.
/// </summary>
/// <remarks>The .NET runtime's and Npgsql's meters are process-wide: a cluster that exports them records every
/// cluster's connections in this process, the metrics-off one's included. Their cost therefore falls on every side
/// here (a process with one silo pays it alone) and a variant cannot take it away from the others.</remarks>
public static class MetricsCostBenchmark
{
    private static readonly TimeSpan ScrapePeriod = TimeSpan.FromSeconds(5);

    private sealed record Side(string Name, BenchCluster Cluster, bool Metrics)
    {
        public List<(string Token, int Silo, string Room)> Senders = [];
        public readonly List<double> Rates = [];
        public readonly List<double> CpuPerMessage = [];
    }

    /// <param name="variants">Each a comma-separated list of meter names to leave out (e.g.
    /// <c>Microsoft.AspNetCore.Hosting,Microsoft.AspNetCore.Routing</c>).</param>
    public static async Task RunAsync(int rounds, TimeSpan duration, int connections, int users, int rooms, IReadOnlyList<string> variants)
    {
        var sides = new List<Side>();
        try
        {
            sides.Add(new Side("off", await BenchCluster.StartAsync(2, new Dictionary<string, string?> { ["Homeserver:Metrics:Enabled"] = "false" }), false));
            sides.Add(new Side("on", await BenchCluster.StartAsync(2, new Dictionary<string, string?> { ["Homeserver:Metrics:Enabled"] = "true" }), true));
            foreach (var variant in variants)
            {
                var settings = new Dictionary<string, string?> { ["Homeserver:Metrics:Enabled"] = "true" };
                var excluded = variant.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                for (var i = 0; i < excluded.Length; i++) settings[$"Homeserver:Metrics:ExcludeMeters:{i}"] = excluded[i];
                sides.Add(new Side($"on without {variant}", await BenchCluster.StartAsync(2, settings), true));
            }
            await MeasureAsync(sides, rounds, duration, connections, users, rooms);
        }
        finally
        {
            foreach (var side in sides) await side.Cluster.DisposeAsync();
        }
    }

    private static async Task MeasureAsync(List<Side> sides, int rounds, TimeSpan duration, int connections, int users, int rooms)
    {
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = connections, PooledConnectionLifetime = TimeSpan.FromMinutes(10) })
        { Timeout = TimeSpan.FromSeconds(60) };
        foreach (var side in sides) side.Senders = (await SendBenchmark.SetUpSendersAsync(http, side.Cluster, users, rooms)).Senders;
        // Warmed up in the reverse of the first round's order, so the first measured side is not the one left idle the longest.
        for (var i = sides.Count - 1; i >= 0; i--)
            await SendBenchmark.LoadAsync(SendBenchmark.Warmup, connections, SendBenchmark.Sends(http, sides[i].Cluster, sides[i].Senders, "warm"));
        foreach (var side in sides.Where(s => s.Metrics))
        {
            var scrapeBytes = (await http.GetStringAsync(side.Cluster.Urls[0] + "/metrics")).Length;
            Console.WriteLine($"metrics {side.Name}: one scrape of silo 0 is {scrapeBytes / 1024.0:F0} KiB; silos scraped every {ScrapePeriod.TotalSeconds:F0} s while loaded");
        }

        // CPU per message is the steadier measure on a shared machine: other load slows a run's rate but hardly changes
        // what each message costs. The runs are sequential, so this process's CPU in a run is the loaded side's (and
        // the load generator's, the same on every side).
        var cpu = new CpuMeter(sides[0].Cluster.Postgres.DataDirectory);
        for (var round = 0; round < rounds; round++)
        {
            for (var k = 0; k < sides.Count; k++)
            {
                var side = sides[(k + round) % sides.Count];
                using var stopScraping = new CancellationTokenSource();
                var scraping = side.Metrics ? ScrapeAsync(http, side.Cluster, stopScraping.Token) : Task.CompletedTask;
                var before = cpu.Sample();
                var run = await SendBenchmark.LoadAsync(duration, connections, SendBenchmark.Sends(http, side.Cluster, side.Senders, $"r{round}"));
                stopScraping.Cancel();
                await scraping;
                var used = cpu.Sample() - before;
                side.Rates.Add(run.Rate);
                side.CpuPerMessage.Add(used.ProcessMs * 1000 / Math.Max(1, run.Count));
                Console.WriteLine($"round {round + 1}, metrics {side.Name}: {run.Rate:F0} messages/s, {Stats.Summary(run.Latencies)}; " +
                                  $"{side.CpuPerMessage[^1]:F0} µs CPU in .NET per message");
            }
        }

        var off = sides[0];
        Console.WriteLine($"PUT /send ({users} users, {rooms} rooms, {connections} connections, {rounds} rounds of {duration.TotalSeconds:F0} s), medians:");
        foreach (var side in sides)
        {
            var rate = Median(side.Rates);
            var cpuUs = Median(side.CpuPerMessage);
            Console.WriteLine($"  metrics {side.Name}: {rate:F0} messages/s, {cpuUs:F0} µs CPU in .NET per message (load generator included)" +
                              (side == off ? "" : $"; rate {rate / Median(off.Rates):F3}x off (metrics cost {(1 - rate / Median(off.Rates)) * 100:F1} %), " +
                                                  $"CPU per message {cpuUs / Median(off.CpuPerMessage):F3}x off"));
        }
    }

    private static async Task ScrapeAsync(HttpClient http, BenchCluster cluster, CancellationToken ct)
    {
        try
        {
            while (!ct.IsCancellationRequested)
            {
                foreach (var url in cluster.Urls) (await http.GetAsync(url + "/metrics", ct)).EnsureSuccessStatusCode();
                await Task.Delay(ScrapePeriod, ct);
            }
        }
        catch (OperationCanceledException) { }
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }
}

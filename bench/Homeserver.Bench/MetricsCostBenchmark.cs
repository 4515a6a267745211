namespace Homeserver.Bench;

/// <summary>
/// Issue 11's benchmark: what metrics cost the send path. Two 2-silo clusters in this process, each over a private
/// PostgreSQL of its own, one with <c>Homeserver:Metrics:Enabled=true</c> and one with <c>false</c>, both set up and
/// warmed up alike. Then the send load (<see cref="SendBenchmark"/>'s, many users in many rooms) runs against one and
/// then the other, in pairs whose order alternates, so that drift and other load on the machine fall on both sides;
/// while the metrics cluster is loaded its two silos are scraped every <see cref="ScrapePeriod"/> (more often than
/// Prometheus' usual 15 s), so collection and export are in the price too. Reports every run, the medians and their ratio.
/// </summary>
public static class MetricsCostBenchmark
{
    private static readonly TimeSpan ScrapePeriod = TimeSpan.FromSeconds(5);

    public static async Task RunAsync(int pairs, TimeSpan duration, int connections, int users, int rooms)
    {
        await using var on = await BenchCluster.StartAsync(2, new Dictionary<string, string?> { ["Homeserver:Metrics:Enabled"] = "true" });
        await using var off = await BenchCluster.StartAsync(2, new Dictionary<string, string?> { ["Homeserver:Metrics:Enabled"] = "false" });
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = connections, PooledConnectionLifetime = TimeSpan.FromMinutes(10) })
        { Timeout = TimeSpan.FromSeconds(60) };
        var sides = new[] { (Name: "on", Cluster: on, Metrics: true), (Name: "off", Cluster: off, Metrics: false) };
        var senders = new Dictionary<string, List<(string Token, int Silo, string Room)>>();
        foreach (var side in sides) senders[side.Name] = (await SendBenchmark.SetUpSendersAsync(http, side.Cluster, users, rooms)).Senders;
        // Warmed up in the reverse of the first pair's order, so the first measured side is not the one left idle the longest.
        foreach (var side in sides.Reverse())
            await SendBenchmark.LoadAsync(SendBenchmark.Warmup, connections, SendBenchmark.Sends(http, side.Cluster, senders[side.Name], "warm"));
        var scrapeBytes = (await http.GetStringAsync(on.Urls[0] + "/metrics")).Length;
        Console.WriteLine($"metrics on: one scrape of silo 0 is {scrapeBytes / 1024.0:F0} KiB; silos scraped every {ScrapePeriod.TotalSeconds:F0} s while loaded");

        var rates = new Dictionary<string, List<double>> { ["on"] = [], ["off"] = [] };
        // CPU per message is the steadier measure on a shared machine: other load slows a run's rate but hardly changes
        // what each message costs. The runs are sequential, so this process's CPU in a run is the loaded side's (and
        // the load generator's, the same on both sides).
        var cpuPerMessage = new Dictionary<string, List<double>> { ["on"] = [], ["off"] = [] };
        var cpu = new CpuMeter(on.Postgres.DataDirectory);
        for (var pair = 0; pair < pairs; pair++)
        {
            foreach (var side in pair % 2 == 0 ? sides : sides.Reverse())
            {
                using var stopScraping = new CancellationTokenSource();
                var scraping = side.Metrics ? ScrapeAsync(http, side.Cluster, stopScraping.Token) : Task.CompletedTask;
                var before = cpu.Sample();
                var run = await SendBenchmark.LoadAsync(duration, connections, SendBenchmark.Sends(http, side.Cluster, senders[side.Name], $"p{pair}"));
                stopScraping.Cancel();
                await scraping;
                var used = cpu.Sample() - before;
                rates[side.Name].Add(run.Rate);
                cpuPerMessage[side.Name].Add(used.ProcessMs * 1000 / Math.Max(1, run.Count));
                Console.WriteLine($"pair {pair + 1}, metrics {side.Name}: {run.Rate:F0} messages/s, {Stats.Summary(run.Latencies)}; " +
                                  $"{cpuPerMessage[side.Name][^1]:F0} µs CPU in .NET per message");
            }
        }
        var medianOn = Median(rates["on"]);
        var medianOff = Median(rates["off"]);
        Console.WriteLine($"PUT /send ({users} users, {rooms} rooms, {connections} connections, {pairs} pairs of {duration.TotalSeconds:F0} s): " +
                          $"median with metrics {medianOn:F0} messages/s, without {medianOff:F0} messages/s; ratio on/off {medianOn / medianOff:F3} " +
                          $"(metrics cost {(1 - medianOn / medianOff) * 100:F1} %)");
        var cpuOn = Median(cpuPerMessage["on"]);
        var cpuOff = Median(cpuPerMessage["off"]);
        Console.WriteLine($"CPU in .NET per message (load generator included): median with metrics {cpuOn:F0} µs, without {cpuOff:F0} µs " +
                          $"(metrics cost {(cpuOn / cpuOff - 1) * 100:F1} % more CPU per message)");
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

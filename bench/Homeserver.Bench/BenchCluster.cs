using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Homeserver.Api;
using Homeserver.Hosting;
using Homeserver.Storage;
using Microsoft.Extensions.Logging.Abstractions;

namespace Homeserver.Bench;

/// <summary>A private PostgreSQL (fsync on, as in production) and N co-hosted silos on loopback, for benchmarks.</summary>
public sealed class BenchCluster : IAsyncDisposable
{
    private readonly string _folder;
    public EmbeddedPostgres Postgres { get; }
    public List<WebApplication> Silos { get; } = [];
    public List<string> Urls { get; } = [];
    public string ConnectionString => Postgres.ConnectionString();

    private readonly IDictionary<string, string?>? _settings;
    private readonly Action<WebApplication>? _map;

    private BenchCluster(string folder, EmbeddedPostgres postgres, IDictionary<string, string?>? settings, Action<WebApplication>? map)
    {
        _folder = folder;
        Postgres = postgres;
        _settings = settings;
        _map = map;
    }

    public static async Task<BenchCluster> StartAsync(int silos, IDictionary<string, string?>? settings = null, Action<WebApplication>? map = null)
    {
        var folder = Path.Combine(Path.GetTempPath(), $"homeserver-bench-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(folder, (UnixFileMode)0b111_101_101);
        var pg = new EmbeddedPostgres(folder, NullLogger.Instance, fsync: true);
        await pg.StartAsync();
        var cluster = new BenchCluster(folder, pg, settings, map);
        await cluster.StartSilosAsync(silos);
        return cluster;
    }

    /// <summary>Stops every silo and starts as many new ones (on new ports) over the same PostgreSQL, as a deploy
    /// does: grains, caches and per-silo memory start empty; the database keeps everything.</summary>
    public async Task RestartSilosAsync()
    {
        var count = Silos.Count;
        await StopSilosAsync();
        await StartSilosAsync(count);
    }

    private async Task StartSilosAsync(int silos)
    {
        var pg = Postgres;
        for (var i = 0; i < silos; i++)
        {
            var http = LoopbackPorts.Free();
            var config = new Dictionary<string, string?>
            {
                ["urls"] = $"http://127.0.0.1:{http}",
                ["Homeserver:Postgres"] = pg.ConnectionString() + ";Maximum Pool Size=100",
                ["Homeserver:PasswordHashCost"] = "4",
                ["Homeserver:RateLimits:Enabled"] = "false", // load from one address, as fast as it goes
                // Writers spread over the silos as in production, but during set-up rather than half-way through a run.
                ["Homeserver:WriterRebalanceDelay"] = "00:00:01",
                ["Homeserver:Cluster:SiloPort"] = LoopbackPorts.Free().ToString(),
                ["Homeserver:Cluster:GatewayPort"] = LoopbackPorts.Free().ToString(),
                ["Logging:LogLevel:Default"] = "Warning",
                ["Logging:LogLevel:Orleans"] = "Error",
                ["Logging:LogLevel:Microsoft"] = "Error",
            };
            if (_settings is not null) foreach (var (k, v) in _settings) config[k] = v;
            var app = HomeserverApp.Build([], b => b.Configuration.AddInMemoryCollection(config));
            _map?.Invoke(app);
            await app.StartAsync();
            Silos.Add(app);
            Urls.Add($"http://127.0.0.1:{http}");
        }
    }

    private async Task StopSilosAsync()
    {
        for (var i = Silos.Count - 1; i >= 0; i--)
        {
            try { await Silos[i].StopAsync(); await Silos[i].DisposeAsync(); } catch (Exception) { }
        }
        Silos.Clear();
        Urls.Clear();
    }

    public async ValueTask DisposeAsync()
    {
        await StopSilosAsync();
        await Postgres.StopAsync();
        try { Directory.Delete(_folder, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

}

public static class Stats
{
    public static double Percentile(List<double> sorted, double p)
    {
        if (sorted.Count == 0) return double.NaN;
        var rank = p / 100.0 * (sorted.Count - 1);
        var lo = (int)Math.Floor(rank);
        var hi = (int)Math.Ceiling(rank);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
    }

    public static string Summary(List<double> latenciesMs)
    {
        latenciesMs.Sort();
        return $"p50 {Percentile(latenciesMs, 50):F2} ms, p99 {Percentile(latenciesMs, 99):F2} ms (n={latenciesMs.Count})";
    }
}

/// <summary>The benchmarks' JSON requests to the front ends.</summary>
public static class BenchHttp
{
    public static async Task<JsonNode> SendAsync(HttpClient http, HttpMethod method, string url, string? token,
        JsonNode? body, CancellationToken ct = default)
    {
        using var request = new HttpRequestMessage(method, url);
        if (token is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        if (body is not null) request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
        using var response = await http.SendAsync(request, ct);
        var text = await response.Content.ReadAsStringAsync(ct);
        if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"{method} {url}: {(int)response.StatusCode} {text}");
        return JsonNode.Parse(text)!;
    }
}

/// <summary>
/// CPU time of this process (load generator, silos, front ends) and of the private PostgreSQL's processes (read from
/// /proc, Linux only), with this process's garbage collections: the machine is CPU-bound, so CPU per request is what a
/// path really costs, and pauses tell a run's slow waves from its work. With <paramref name="server"/>, "process" is
/// that process (a server the benchmark started) instead of this one; the collections are still this one's.
/// </summary>
public sealed class CpuMeter(string dataDirectory, Process? server = null)
{
    public readonly record struct Usage(double WallMs, double ProcessMs, double PostgresMs, double GcPauseMs, int Collections, int Gen1, int Gen2,
        long ProcessSwitches, long PostgresSwitches)
    {
        public static Usage operator -(Usage a, Usage b) => new(a.WallMs - b.WallMs, a.ProcessMs - b.ProcessMs, a.PostgresMs - b.PostgresMs,
            a.GcPauseMs - b.GcPauseMs, a.Collections - b.Collections, a.Gen1 - b.Gen1, a.Gen2 - b.Gen2,
            a.ProcessSwitches - b.ProcessSwitches, a.PostgresSwitches - b.PostgresSwitches);

        public string PerRequest(long requests) => requests == 0 ? "" :
            $"CPU per request: {ProcessMs * 1000 / requests:F0} µs in .NET + {PostgresMs * 1000 / requests:F0} µs in PostgreSQL; " +
            $"context switches per request: {(double)ProcessSwitches / requests:F1} in .NET + {(double)PostgresSwitches / requests:F1} in PostgreSQL";

        public string Summary() =>
            $"{ProcessMs:F0} ms CPU in .NET + {PostgresMs:F0} ms in PostgreSQL in {WallMs:F0} ms; " +
            $"GC paused {GcPauseMs:F1} ms in {Collections} collections ({Gen1} of gen1, {Gen2} of gen2)";
    }

    public Usage Sample()
    {
        var (postgresMs, postgresSwitches) = Postgres();
        return new(Stopwatch.GetTimestamp() * 1000.0 / Stopwatch.Frequency, ProcessMs(), postgresMs,
            GC.GetTotalPauseDuration().TotalMilliseconds, GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2),
            ProcessSwitches(), postgresSwitches);
    }

    private double ProcessMs()
    {
        if (server is null) return Process.GetCurrentProcess().TotalProcessorTime.TotalMilliseconds;
        server.Refresh();
        return server.TotalProcessorTime.TotalMilliseconds;
    }

    // Context switches, voluntary and involuntary: on a machine of two cores, waking a sleeping thread at every hand-off
    // of a request costs more than the code it runs (docs/benchmarks.md, issue 13, nineteenth session). This process's
    // come from getrusage, which counts threads that have ended too; another process's from its live threads' status
    // files (a thread the pool retired in between takes its count with it).
    private long ProcessSwitches()
    {
        if (!OperatingSystem.IsLinux()) return 0;
        if (server is null)
        {
            var usage = new long[18]; // struct rusage on 64-bit Linux: two timevals, then 14 longs; nvcsw and nivcsw last
            try { return getrusage(0, usage) == 0 ? usage[16] + usage[17] : 0; }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return 0; }
        }
        long switches = 0;
        try
        {
            foreach (var task in Directory.EnumerateDirectories($"/proc/{server.Id}/task")) switches += Switches(Path.Combine(task, "status"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        return switches;
    }

    [System.Runtime.InteropServices.DllImport("libc")]
    private static extern int getrusage(int who, long[] usage);

    private static long Switches(string statusFile)
    {
        long switches = 0;
        try
        {
            foreach (var line in File.ReadLines(statusFile))
                if (line.StartsWith("voluntary_ctxt_switches:", StringComparison.Ordinal) || line.StartsWith("nonvoluntary_ctxt_switches:", StringComparison.Ordinal))
                    switches += long.Parse(line[(line.IndexOf(':') + 1)..].Trim());
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException) { }
        return switches;
    }

    // Backends are pooled, so the postmaster's live children cover (almost) all of PostgreSQL's work in a phase.
    private (double Ms, long Switches) Postgres()
    {
        try
        {
            var pidFile = Path.Combine(dataDirectory, "postmaster.pid");
            if (!OperatingSystem.IsLinux() || !File.Exists(pidFile)) return (0, 0);
            var postmaster = File.ReadLines(pidFile).First().Trim();
            double ticks = 0;
            long switches = 0;
            foreach (var dir in Directory.EnumerateDirectories("/proc"))
            {
                var name = Path.GetFileName(dir);
                if (!char.IsDigit(name[0])) continue;
                string stat;
                try { stat = File.ReadAllText(Path.Combine(dir, "stat")); } catch (IOException) { continue; }
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                // fields[1] is the parent pid; [11] and [12] are utime and stime in clock ticks.
                if (name != postmaster && fields[1] != postmaster) continue;
                ticks += double.Parse(fields[11]) + double.Parse(fields[12]);
                switches += Switches(Path.Combine(dir, "status"));
            }
            return (ticks * 10, switches); // USER_HZ is 100 on Linux
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException) { return (0, 0); }
    }
}

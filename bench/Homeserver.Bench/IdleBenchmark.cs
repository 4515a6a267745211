using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Homeserver.Hosting;

namespace Homeserver.Bench;

/// <summary>
/// What a silo that only follows the streams costs: a front end with its silo (on its private PostgreSQL) and a
/// second silo without HTTP run as separate processes from a build's binaries; after a warm-up (the JIT compiles for
/// the first minute), the second process's CPU (user + system, from /proc) is measured while the cluster is idle and
/// while one client sends a steady rate of messages through the front end. Stream writers stay where they were first
/// placed (on the front end's silo), so the second silo follows and hosts no writer. Run it once per build to compare:
/// <c>idle [binaries folder] [warm-up s] [measure s] [events/s]</c>, the folder holding <c>Api/</c> and <c>Silo/</c>
/// build outputs (default: this checkout's Release builds).
/// The baseline in the same run is Orleans' own floor: two more processes on the same PostgreSQL, silos with exactly
/// the homeserver's clustering configuration (<see cref="HomeserverHostingExtensions.UseHomeserverClustering"/>) and
/// nothing else, in a cluster of their own; one of them is measured beside the following silo. What a following silo
/// costs beyond it is the homeserver's own work.
/// </summary>
public static class IdleBenchmark
{
    public static async Task RunAsync(string root, TimeSpan warmup, TimeSpan measure, int eventsPerSecond)
    {
        var data = Path.Combine(Path.GetTempPath(), $"homeserver-idle-{Guid.NewGuid():N}");
        Directory.CreateDirectory(data);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(data, (UnixFileMode)0b111_101_101);
        var apiSiloPort = LoopbackPorts.Free();
        var httpPort = LoopbackPorts.Free();
        var common = new[] { "--Homeserver:WriterRebalanceDelay=00:00:00", "--Logging:LogLevel:Default=Warning", "--Homeserver:PasswordHashCost=4",
            "--Homeserver:RateLimits:Enabled=false" };
        using var api = Start(root, "Api", [$"--urls=http://127.0.0.1:{httpPort}", $"--Homeserver:DataDirectory={data}",
            $"--Homeserver:Cluster:SiloPort={apiSiloPort}", $"--Homeserver:Cluster:GatewayPort={LoopbackPorts.Free()}", .. common]);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{httpPort}") };
        await WaitReadyAsync(http, api);
        var pgPort = (await File.ReadAllTextAsync(Path.Combine(data, "postgres", "port"))).Trim();
        Child? follower = null, floor = null, floorPeer = null;
        try
        {
            var register = await http.PostAsync("/_matrix/client/v3/register", new StringContent(
                "{\"username\":\"idlebench\",\"password\":\"pw-123456789\",\"auth\":{\"type\":\"m.login.dummy\"}}", Encoding.UTF8, "application/json"));
            var token = JsonNode.Parse(await register.Content.ReadAsStringAsync())!["access_token"]!.GetValue<string>();
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
            var created = await http.PostAsync("/_matrix/client/v3/createRoom", new StringContent("{}", Encoding.UTF8, "application/json"));
            var room = Uri.EscapeDataString(JsonNode.Parse(await created.Content.ReadAsStringAsync())!["room_id"]!.GetValue<string>());
            var txn = 0;
            async Task SendAsync() => (await http.PutAsync($"/_matrix/client/v3/rooms/{room}/send/m.room.message/i{txn++}",
                new StringContent("{\"msgtype\":\"m.text\",\"body\":\"tick\"}", Encoding.UTF8, "application/json"))).EnsureSuccessStatusCode();
            // Every grain the sends touch is active on the front end's silo before the second silo joins, so the
            // second hosts nothing the load calls: it only follows the streams.
            for (var i = 0; i < 5; i++) await SendAsync();

            // PrimarySiloPort is for builds that still cluster through localhost (a primary silo); newer ones ignore it.
            follower = Start(root, "Silo", [$"--Homeserver:Postgres=Host=127.0.0.1;Port={pgPort};Username=postgres;Database=postgres",
                $"--Homeserver:Cluster:SiloPort={LoopbackPorts.Free()}", $"--Homeserver:Cluster:GatewayPort={LoopbackPorts.Free()}",
                $"--Homeserver:Cluster:PrimarySiloPort={apiSiloPort}", $"--Homeserver:Metrics:Port={LoopbackPorts.Free()}", .. common]);
            var connection = $"Host=127.0.0.1;Port={pgPort};Username=postgres;Database=postgres";
            floor = StartBareSilo(connection);
            floorPeer = StartBareSilo(connection);

            var sent = 0;
            var interval = TimeSpan.FromSeconds(1.0 / eventsPerSecond);
            var next = Stopwatch.GetTimestamp();
            async Task SteadyLoadAsync()
            {
                await SendAsync();
                sent++;
                next += (long)(interval.TotalSeconds * Stopwatch.Frequency);
                var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), next);
                if (wait > TimeSpan.Zero) await Task.Delay(wait);
            }

            // The warm-up runs the same load as the busy phase: .NET compiles a method again, optimised, once it has
            // been called often enough (tiered compilation), and a path first taken inside a measurement would put
            // that one-time compilation into it (it was a third of a following silo's CPU in the first minute of load).
            Console.WriteLine($"binaries {root}; warm-up {warmup.TotalSeconds:F0} s at {eventsPerSecond} events/s, then {measure.TotalSeconds:F0} s per phase");
            var warm = Stopwatch.StartNew();
            while (warm.Elapsed < warmup) await SteadyLoadAsync();
            await Task.Delay(TimeSpan.FromSeconds(5)); // what the last sends woke settles
            var idle = await MeasureAsync([follower.Process, api.Process, floor.Process], measure, work: null);
            Console.WriteLine($"idle:        following silo {idle[0]:F2} % of a core, front end + silo {idle[1]:F2} %, bare Orleans silo {idle[2]:F2} %");

            sent = 0;
            next = Stopwatch.GetTimestamp();
            var busy = await MeasureAsync([follower.Process, api.Process, floor.Process], measure, SteadyLoadAsync);
            Console.WriteLine($"{eventsPerSecond} events/s: following silo {busy[0]:F2} % of a core, front end + silo {busy[1]:F2} %, " +
                              $"bare Orleans silo {busy[2]:F2} % ({sent / measure.TotalSeconds:F1} events/s sent)");
        }
        finally
        {
            floor?.Stop();
            floorPeer?.Stop();
            follower?.Stop();
            floor?.Dispose();
            floorPeer?.Dispose();
            follower?.Dispose();
            api.Stop();
            try { Directory.Delete(data, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>CPU of each process, in % of one core, while <paramref name="work"/> (if any) runs in a loop for the
    /// period.</summary>
    private static async Task<double[]> MeasureAsync(Process[] processes, TimeSpan period, Func<Task>? work)
    {
        var before = processes.Select(CpuSeconds).ToArray();
        var clock = Stopwatch.StartNew();
        while (work is not null && clock.Elapsed < period) await work();
        var left = period - clock.Elapsed;
        if (left > TimeSpan.Zero) await Task.Delay(left);
        var elapsed = clock.Elapsed.TotalSeconds;
        return processes.Select((p, i) => (CpuSeconds(p) - before[i]) * 100 / elapsed).ToArray();
    }

    /// <summary>The floor: this benchmark's own binary as a silo with the homeserver's clustering and nothing else, in a
    /// cluster of its own on the same database.</summary>
    internal static Child StartBareSilo(string connection, string clusterId = "idle-floor", string[]? settings = null,
        Dictionary<string, string>? environment = null) =>
        Spawn(typeof(IdleBenchmark).Assembly.Location,
            ["bare-silo", connection, LoopbackPorts.Free().ToString(), LoopbackPorts.Free().ToString(), clusterId, .. settings ?? []],
            environment);

    /// <summary>A silo with the homeserver's clustering and no grains of its own. Settings (<c>name=value</c>) change
    /// Orleans options for <see cref="OrleansFloorBenchmark"/>: <c>load</c> (seconds between load statistics),
    /// <c>probe</c> (seconds between membership probes).</summary>
    public static async Task RunBareSiloAsync(string connection, int siloPort, int gatewayPort, string clusterId, string[] settings)
    {
        var values = settings.Select(s => s.Split('=', 2)).ToDictionary(kv => kv[0], kv => double.Parse(kv[1], System.Globalization.CultureInfo.InvariantCulture));
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.UseOrleans(silo =>
        {
            silo.UseHomeserverClustering(new ClusterOptions { SiloPort = siloPort, GatewayPort = gatewayPort, ClusterId = clusterId }, connection);
            if (values.TryGetValue("load", out var load))
                silo.Configure<Orleans.Configuration.DeploymentLoadPublisherOptions>(o => o.DeploymentLoadPublisherRefreshTime = TimeSpan.FromSeconds(load));
            if (values.TryGetValue("probe", out var probe))
                silo.Configure<Orleans.Configuration.ClusterMembershipOptions>(o => o.ProbeTimeout = TimeSpan.FromSeconds(probe));
        });
        using var host = builder.Build();
        // Orleans samples the runtime's event counters every second (for CPU-aware placement); disposing its
        // statistics provider stops that listener, to see what it costs.
        if (values.TryGetValue("counters", out var counters) && counters == 0)
            (host.Services.GetRequiredService<Orleans.Statistics.IEnvironmentStatisticsProvider>() as IDisposable)?.Dispose();
        await host.RunAsync();
    }

    // utime + stime of /proc/<pid>/stat (fields 14 and 15, after the parenthesised command name), in seconds.
    internal static double CpuSeconds(Process process)
    {
        var stat = File.ReadAllText($"/proc/{process.Id}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (long.Parse(fields[11]) + long.Parse(fields[12])) / 100.0; // USER_HZ is 100 on Linux
    }

    internal sealed class Child(Process process) : IDisposable
    {
        public Process Process { get; } = process;

        public void Stop()
        {
            if (Process.HasExited) return;
            // SIGTERM, so the front end stops its private PostgreSQL.
            Process.Start("kill", ["-TERM", Process.Id.ToString()])?.WaitForExit();
            if (!Process.WaitForExit(30_000)) Process.Kill(entireProcessTree: true);
        }

        public void Dispose()
        {
            if (!Process.HasExited) Process.Kill(entireProcessTree: true);
            Process.Dispose();
        }
    }

    private static Child Start(string root, string project, string[] args)
    {
        var dll = Path.Combine(root, project, "bin", "Release", "net10.0", $"Homeserver.{project}.dll");
        if (!File.Exists(dll)) throw new FileNotFoundException($"build {project} first: dotnet build -c Release {project}", dll);
        return Spawn(dll, args);
    }

    private static Child Spawn(string dll, string[] args, Dictionary<string, string>? environment = null)
    {
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var (name, value) in environment ?? []) psi.Environment[name] = value;
        psi.ArgumentList.Add(dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        var process = Process.Start(psi)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new Child(process);
    }

    private static async Task WaitReadyAsync(HttpClient http, Child api)
    {
        for (var i = 0; i < 240; i++)
        {
            if (api.Process.HasExited) throw new InvalidOperationException("the front end exited");
            try
            {
                if ((await http.GetAsync("/health/ready")).IsSuccessStatusCode) return;
            }
            catch (HttpRequestException) { }
            await Task.Delay(250);
        }
        throw new TimeoutException("the front end never became ready");
    }
}

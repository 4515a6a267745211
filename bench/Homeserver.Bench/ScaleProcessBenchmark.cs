using System.Globalization;
using Homeserver.Hosting;
using Homeserver.Storage;

namespace Homeserver.Bench;

/// <summary>
/// Issue 13's account shape against the server as the README's first command runs it: one <c>Api</c> process (HTTP and
/// its silo) on its embedded default, a private PostgreSQL it creates and starts under its data directory. The shape is
/// built through the HTTP API, then the server process's own resident memory is read (<c>/proc/pid/status</c>: this
/// process, the load generator, is not in it, nor are PostgreSQL's processes), beside its managed heap and cache sizes
/// from its <c>/metrics</c>. Cold syncs come after restarting the process on the same data directory and ports (a new
/// process: caches, grains and the JIT all start cold, as after a deploy), timed from its readiness probe passing.
/// <c>scale-process [binaries folder] [rooms] [members] [messages per room] [runs] [warm repeats]</c>, the folder
/// holding <c>Api/</c>'s Release build output (<c>dotnet build -c Release Api</c>).
/// </summary>
public static class ScaleProcessBenchmark
{
    public static async Task RunAsync(string root, int rooms, int members, int messagesPerRoom, int runs, int warmRepeats)
    {
        // BENCH_DATA=folder: the data directory is that folder and stays; the shape built in it is kept (with the
        // syncing account's token) and the next run with the same folder and shape goes straight to the cold syncs,
        // so that runtime settings (DOTNET_* variables, which the server process inherits) can be compared quickly.
        var given = Environment.GetEnvironmentVariable("BENCH_DATA");
        var kept = !string.IsNullOrEmpty(given);
        var folder = kept ? Path.GetFullPath(given!) : Path.Combine(Path.GetTempPath(), $"homeserver-scale-process-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        var shapeFile = Path.Combine(folder, $"bench-shape-{rooms}x{members}x{messagesPerRoom}.txt");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(folder, (UnixFileMode)0b111_101_101);
        string[] args = [$"--Homeserver:DataDirectory={folder}", "--Homeserver:PasswordHashCost=4",
            "--Homeserver:RateLimits:Enabled=false", // load from one address, as fast as it goes
            "--Logging:LogLevel:Default=Warning"];
        var ports = (Http: LoopbackPorts.Free(), Silo: LoopbackPorts.Free(), Gateway: LoopbackPorts.Free());
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 64, PooledConnectionLifetime = TimeSpan.FromMinutes(30) })
        { Timeout = TimeSpan.FromMinutes(5) };
        var server = ClusterBenchmark.Node.Start(root, "Api", "api", http: true, args, ports);
        try
        {
            await server.WaitReadyAsync(http, [server]);
            var url = server.Url!;
            Console.WriteLine($"server: one Api process on its embedded default (pid {server.Process.Id}); load {ScaleBenchmark.Load()}");
            Console.WriteLine($"server memory when ready: {await MemoryAsync(http, server)}");

            string token;
            if (kept && File.Exists(shapeFile))
            {
                token = (await File.ReadAllTextAsync(shapeFile)).Trim();
                Console.WriteLine($"the shape is already built in {folder}");
            }
            else
            {
                var shape = await ScaleShape.BuildAsync(http, [url], members, rooms, messagesPerRoom, concurrency: 32);
                Console.WriteLine($"built {members} users x {rooms} rooms ({shape.Joins} joins at {shape.JoinsPerSecond:F0}/s, {rooms * messagesPerRoom} messages)");
                Console.WriteLine($"server memory after building: {await MemoryAsync(http, server)}");
                token = shape.Accounts[0].Token;
                foreach (var (name, filter) in new[] { ("lazy", ScaleBenchmark.LazyFilter), ("full", ScaleBenchmark.FullFilter) })
                    await ScaleBenchmark.FirstSyncAsync(http, url, token, name, filter, rooms, members);
                Console.WriteLine($"server memory after building and syncing: {await MemoryAsync(http, server)}");
                if (kept) await File.WriteAllTextAsync(shapeFile, token);
            }

            var results = new Dictionary<string, List<double>> { ["lazy cold"] = [], ["lazy warm"] = [], ["full cold"] = [], ["full warm"] = [] };
            // CPU beside the wall clock: this machine's neighbours move a sync's wall time by half or more between runs,
            // while the CPU the server and its PostgreSQL spend on it moves far less.
            var cpuMs = results.Keys.ToDictionary(k => k, _ => new List<double>());
            var postgresMs = results.Keys.ToDictionary(k => k, _ => new List<double>());
            var resident = new List<double>();
            for (var run = 0; run < runs; run++)
                foreach (var (name, filter) in new[] { ("lazy", ScaleBenchmark.LazyFilter), ("full", ScaleBenchmark.FullFilter) })
                {
                    server.Stop();
                    server = ClusterBenchmark.Node.Start(root, "Api", "api", http: true, args, ports);
                    await server.WaitReadyAsync(http, [server]);
                    // BENCH_COLD_PAUSE=N: N seconds before each cold sync, to attach a profiler to the new process.
                    if (int.TryParse(Environment.GetEnvironmentVariable("BENCH_COLD_PAUSE"), out var pause) && pause > 0)
                    {
                        Console.WriteLine($"pid {server.Process.Id} ready; {name} cold sync in {pause} s");
                        await Task.Delay(TimeSpan.FromSeconds(pause));
                    }
                    var cpu = new CpuMeter(EmbeddedPostgres.DataDirectoryUnder(EmbeddedPostgres.RootIn(folder)), server.Process);
                    for (var i = 0; i <= warmRepeats; i++)
                    {
                        var kind = i == 0 ? $"{name} cold" : $"{name} warm";
                        var before = cpu.Sample();
                        results[kind].Add((await ScaleBenchmark.InitialSyncAsync(http, url, token, filter)).Ms);
                        var used = cpu.Sample() - before;
                        cpuMs[kind].Add(used.ProcessMs + used.PostgresMs);
                        postgresMs[kind].Add(used.PostgresMs);
                    }
                    resident.Add(ResidentMegabytes(server.Process.Id));
                    Console.WriteLine($"run {run + 1}/{runs} {name}: cold {results[$"{name} cold"][^1]:F0} ms, warm {string.Join(" ", results[$"{name} warm"].TakeLast(warmRepeats).Select(ms => $"{ms:F0}"))} ms; " +
                                      $"server {await MemoryAsync(http, server)}; load {ScaleBenchmark.Load()}");
                }
            Console.WriteLine($"initial sync of one account in {rooms} rooms of {members} members, one Api process on its embedded default ({runs} runs, {warmRepeats} warm repeats each; medians):");
            foreach (var (name, ms) in results.Where(r => r.Value.Count > 0))
            {
                ms.Sort();
                var (used, postgres) = (cpuMs[name], postgresMs[name]);
                used.Sort();
                postgres.Sort();
                Console.WriteLine($"  {name,-10} median {Stats.Percentile(ms, 50),7:F0} ms  (min {ms[0]:F0}, max {ms[^1]:F0}); " +
                                  $"CPU median {Stats.Percentile(used, 50):F0} ms (server + PostgreSQL; PostgreSQL's median {Stats.Percentile(postgres, 50):F0} ms)");
            }
            resident.Sort();
            Console.WriteLine($"  resident after a restart and its syncs: median {Stats.Percentile(resident, 50):F0} MB (min {resident[0]:F0}, max {resident[^1]:F0})");
        }
        finally
        {
            server.Stop();
            server.Report();
            // BENCH_KEEP_DATA=1: the data directory (its PostgreSQL cluster) stays, to look at the queries afterwards.
            if (Environment.GetEnvironmentVariable("BENCH_KEEP_DATA") == "1" || kept) Console.WriteLine($"data kept in {folder}");
            else try { Directory.Delete(folder, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>The server process's resident size, and from its <c>/metrics</c> the managed heap after its last
    /// collection and the entries its caches hold.</summary>
    private static async Task<string> MemoryAsync(HttpClient http, ClusterBenchmark.Node server)
    {
        var resident = ResidentMegabytes(server.Process.Id);
        double heap = double.NaN, cacheEntries = 0;
        var caches = new List<string>();
        foreach (var line in (await http.GetStringAsync($"{server.Url}/metrics")).Split('\n'))
        {
            if (line.StartsWith('#') || line.LastIndexOf(' ') is var space && space < 0) continue;
            if (!double.TryParse(line[(space + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out var value)) continue;
            if (line.StartsWith("dotnet_gc_last_collection_heap_size_bytes", StringComparison.Ordinal))
                heap = (double.IsNaN(heap) ? 0 : heap) + value; // one series per generation
            else if (line.StartsWith("homeserver_cache_entries", StringComparison.Ordinal) && value > 0)
            {
                if (!line.Contains(".bytes\"", StringComparison.Ordinal)) cacheEntries += value; // a bound in bytes is not entries
                if (line.IndexOf("cache=\"", StringComparison.Ordinal) is var at and >= 0)
                    caches.Add($"{line[(at + 7)..line.IndexOf('"', at + 7)]}={value:F0}");
            }
        }
        return $"resident {resident:F0} MB (VmRSS), managed heap after the last GC {heap / 1024 / 1024:F0} MB, caches {cacheEntries:F0} entries ({string.Join(" ", caches)})";
    }

    private static double ResidentMegabytes(int pid) => ScaleBenchmark.ResidentBytes(pid) / 1024.0 / 1024.0;
}

using System.Diagnostics;
using Homeserver.Hosting;
using Homeserver.Storage;
using Microsoft.Extensions.Logging.Abstractions;

namespace Homeserver.Bench;

/// <summary>
/// What an idle Orleans silo with the homeserver's clustering costs under each of a few settings, to find what the
/// floor under a following silo is made of: pairs of bare silos (<see cref="IdleBenchmark.RunBareSiloAsync"/>), each
/// pair a cluster of its own on one private PostgreSQL, all pairs at once; one silo of each pair is measured.
/// <c>orleans-floor [warm-up s] [measure s]</c>.
/// </summary>
public static class OrleansFloorBenchmark
{
    private sealed record Setting(string Name, string[] Args, Dictionary<string, string> Environment);

    private static readonly Setting[] Settings =
    [
        new("homeserver's clustering as configured", [], []),
        new("no runtime event counters", ["counters=0"], []),
        new("probes every 2 s", ["probe=2"], []),
        new("probes every 5 s", ["probe=5"], []),
        new("probes every 5 s, no event counters", ["probe=5", "counters=0"], []),
    ];

    public static async Task RunAsync(TimeSpan warmup, TimeSpan measure)
    {
        var root = Path.Combine(Path.GetTempPath(), $"homeserver-floor-{Guid.NewGuid():N}");
        Directory.CreateDirectory(root);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(root, (UnixFileMode)0b111_101_101);
        await using var postgres = new EmbeddedPostgres(Path.Combine(root, "postgres"), NullLogger.Instance);
        await postgres.StartAsync();
        await using (var db = StorageDataSource.Build(postgres.ConnectionString()))
            await new DatabaseStartup(db, NullLogger<DatabaseStartup>.Instance).StartAsync(CancellationToken.None);

        var pairs = Settings.Select((s, i) => (Setting: s,
            Measured: IdleBenchmark.StartBareSilo(postgres.ConnectionString(), $"floor-{i}", s.Args, s.Environment),
            Peer: IdleBenchmark.StartBareSilo(postgres.ConnectionString(), $"floor-{i}", s.Args, s.Environment))).ToList();
        try
        {
            Console.WriteLine($"{pairs.Count} pairs of bare silos; warm-up {warmup.TotalSeconds:F0} s, then {measure.TotalSeconds:F0} s");
            await Task.Delay(warmup);
            var before = pairs.Select(p => IdleBenchmark.CpuSeconds(p.Measured.Process)).ToArray();
            var clock = Stopwatch.StartNew();
            await Task.Delay(measure);
            for (var i = 0; i < pairs.Count; i++)
            {
                var alive = !pairs[i].Measured.Process.HasExited && !pairs[i].Peer.Process.HasExited;
                var cpu = (IdleBenchmark.CpuSeconds(pairs[i].Measured.Process) - before[i]) * 100 / clock.Elapsed.TotalSeconds;
                Console.WriteLine($"{pairs[i].Setting.Name,-45} {cpu,6:F2} % of a core{(alive ? "" : " (a silo exited)")}");
            }
        }
        finally
        {
            foreach (var p in pairs)
            {
                p.Measured.Stop();
                p.Peer.Stop();
                p.Measured.Dispose();
                p.Peer.Dispose();
            }
            await postgres.StopAsync();
            try { Directory.Delete(root, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}

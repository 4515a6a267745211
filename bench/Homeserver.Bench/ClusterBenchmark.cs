using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Homeserver.Hosting;
using Homeserver.Storage;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Homeserver.Bench;

/// <summary>
/// Issue 9's benchmark: the same send load on three shapes of cluster, one after the other in one run, each on a fresh
/// private PostgreSQL (fsync on; started by this process, as a combined Api starts its own) and every homeserver
/// process a real OS process started from a build's binaries: (1) one Api (front end with its silo); (2) one Api and
/// one Silo; (3) three Silos behind two Api front ends without a silo (<c>Homeserver:Role=FrontEnd</c>), the senders
/// spread over both. N senders, each a user of its own sending to a room of its own with transaction ids, one request
/// at a time, keep sending through a warm-up and the measured window; for the window: messages acknowledged per
/// second, latency, and the CPU of each process and of PostgreSQL (user + system from /proc) per message. Then, in
/// (3), with the load still running, the silo holding the events writer of the most senders' rooms is killed
/// (SIGKILL): the failover time of a room is from its last send acknowledged before the kill to its first one after;
/// 503s are retried with the same transaction id after Retry-After, and anything else that is not 200 counts as failed.
/// <c>cluster [binaries folder] [seconds per configuration] [senders] [warm-up s]</c>, the folder holding
/// <c>Api/</c> and <c>Silo/</c> Release build outputs (default: the working directory, which under <c>dotnet run</c> is
/// the project's folder, so pass the checkout). <c>BENCH_LOG_DIR</c> keeps every process's output in files there.
/// </summary>
public static class ClusterBenchmark
{
    private const string V3 = "/_matrix/client/v3";
    private const int MaxSendsPerSender = 10_000_000;
    private const int MaxAttempts = 30;

    private sealed record Shape(string Name, int CombinedApis, int Silos, int FrontEnds, bool Failover);

    private sealed record ProcessFigure(string Name, double CpuMs, string Writers);

    private sealed record Result(Shape Shape, long Messages, double Seconds, double P50, double P99, List<ProcessFigure> Processes,
        double PostgresCpuMs, double LoadGeneratorCpuMs, double OutsideCpuMs, long Failed, long Retried503, FailoverFigures? Failover)
    {
        public double Rate => Messages / Seconds;
        public double PerMessage(double cpuMs) => Messages == 0 ? double.NaN : cpuMs / Messages;
    }

    private sealed record FailoverFigures(string KilledSilo, int AffectedRooms, List<double> FailoverSeconds, List<double> KillToFirstAck,
        double LongestStallAnyRoom, double? DeclaredDeadAfter, long Failed, long Retried503, long AckedAfterKill, List<string> FailedSamples);

    public static async Task RunAsync(string root, TimeSpan measure, int senders, TimeSpan warmup)
    {
        Shape[] shapes =
        [
            new("1 Api (combined)", 1, 0, 0, false),
            new("1 Api (combined) + 1 Silo", 1, 1, 0, false),
            new("3 Silos + 2 Api front ends", 0, 3, 2, true),
        ];
        Console.WriteLine($"binaries {root}; {senders} senders (one room each); warm-up {warmup.TotalSeconds:F0} s, measured {measure.TotalSeconds:F0} s per configuration; " +
                          $"load average {File.ReadAllText("/proc/loadavg").Trim()}");
        var results = new List<Result>();
        foreach (var shape in shapes)
        {
            Console.WriteLine();
            Console.WriteLine($"== {shape.Name}");
            results.Add(await RunShapeAsync(root, shape, measure, senders, warmup));
        }

        Console.WriteLine();
        Console.WriteLine($"load average at the end {File.ReadAllText("/proc/loadavg").Trim()}");
        Console.WriteLine();
        Console.WriteLine("| configuration | messages/s | latency p50 / p99 | CPU per message, each process (% of a core) | PostgreSQL | load generator | all | failed | outside the benchmark |");
        Console.WriteLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        foreach (var r in results)
        {
            var each = string.Join(", ", r.Processes.Select(p => $"{p.Name} {r.PerMessage(p.CpuMs):F3} ms ({p.CpuMs / r.Seconds / 10:F0} %)"));
            var all = r.Processes.Sum(p => p.CpuMs) + r.PostgresCpuMs + r.LoadGeneratorCpuMs;
            Console.WriteLine($"| {r.Shape.Name} | {r.Rate:F0} | {r.P50:F1} / {r.P99:F1} ms | {each} | {r.PerMessage(r.PostgresCpuMs):F3} ms ({r.PostgresCpuMs / r.Seconds / 10:F0} %) | " +
                              $"{r.PerMessage(r.LoadGeneratorCpuMs):F3} ms ({r.LoadGeneratorCpuMs / r.Seconds / 10:F0} %) | {r.PerMessage(all):F3} ms ({all / r.Seconds / 10:F0} %) | {r.Failed} | {r.OutsideCpuMs / r.Seconds / 1000:F2} cores |");
        }
        Console.WriteLine();
        Console.WriteLine("events writers per process at the end of each window: " +
                          string.Join("; ", results.Select(r => $"{r.Shape.Name}: " + string.Join(", ", r.Processes.Select(p => $"{p.Name} {p.Writers}")))));
        var baseline = results[0];
        Console.WriteLine("ratios to configuration 1: " + string.Join(", ", results.Skip(1).Select(r =>
            $"{r.Shape.Name}: messages/s {r.Rate / baseline.Rate:F2}x, homeserver CPU per message {r.PerMessage(r.Processes.Sum(p => p.CpuMs)) / baseline.PerMessage(baseline.Processes.Sum(p => p.CpuMs)):F2}x, " +
            $"PostgreSQL per message {r.PerMessage(r.PostgresCpuMs) / baseline.PerMessage(baseline.PostgresCpuMs):F2}x")));
        foreach (var f in results.Where(r => r.Failover is not null).Select(r => r.Failover!))
        {
            static string List(List<double> xs) => xs.Count == 0 ? "none" :
                $"median {Median(xs):F2} s, min {xs.Min():F2} s, max {xs.Max():F2} s";
            Console.WriteLine($"failover: killed {f.KilledSilo} (events writer of {f.AffectedRooms} senders' rooms); declared dead after " +
                              $"{(f.DeclaredDeadAfter is { } d ? $"{d:F1} s" : "(not seen)")}; failover time per affected room (last ack before the kill -> first ack after): " +
                              $"{List(f.FailoverSeconds)} ({f.FailoverSeconds.Count(x => x > 10)} of {f.FailoverSeconds.Count} over 10 s); kill -> first ack: {List(f.KillToFirstAck)}; longest gap between two acks of any room around the kill: " +
                              $"{f.LongestStallAnyRoom:F2} s; acknowledged after the kill {f.AckedAfterKill}; 503s retried {f.Retried503}; failed requests {f.Failed}");
            foreach (var s in f.FailedSamples) Console.WriteLine($"  failed: {s}");
        }
    }

    private static double Median(List<double> xs)
    {
        var sorted = xs.Order().ToList();
        return sorted.Count == 0 ? double.NaN : sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }

    private static async Task<Result> RunShapeAsync(string root, Shape shape, TimeSpan measure, int senderCount, TimeSpan warmup)
    {
        var folder = Path.Combine(Path.GetTempPath(), $"homeserver-cluster-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(folder, (UnixFileMode)0b111_101_101);
        var pg = new EmbeddedPostgres(folder, NullLogger.Instance, fsync: true);
        var nodes = new List<Node>();
        var load = new Load();
        try
        {
            await pg.StartAsync();
            var connection = pg.ConnectionString();
            await using var db = NpgsqlDataSource.Create(connection);
            string[] common = [$"--Homeserver:Postgres={connection}", "--Homeserver:PasswordHashCost=4",
                "--Homeserver:RateLimits:Enabled=false", // load from one address, as fast as it goes
                // Writers spread over the silos as in production, but during set-up rather than half-way through a run.
                "--Homeserver:WriterRebalanceDelay=00:00:01", "--Logging:LogLevel:Default=Warning"];

            // The first silo of each shape starts alone (it creates the schema), the others once it is a member.
            var silosExpected = shape.CombinedApis + shape.Silos;
            for (var i = 0; i < shape.CombinedApis; i++) nodes.Add(Node.Start(root, "Api", shape.CombinedApis == 1 ? "api" : $"api {i}", http: true, common));
            for (var i = 0; i < shape.Silos; i++)
            {
                nodes.Add(Node.Start(root, "Silo", $"silo {i}", http: false, common));
                if (nodes.Count == 1) await WaitForActiveSilosAsync(db, 1, nodes);
            }
            await WaitForActiveSilosAsync(db, silosExpected, nodes);
            for (var i = 0; i < shape.FrontEnds; i++) nodes.Add(Node.Start(root, "Api", $"front end {i}", http: true, [.. common, "--Homeserver:Role=FrontEnd"]));

            using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = senderCount + 8, PooledConnectionLifetime = TimeSpan.FromMinutes(30) })
            { Timeout = TimeSpan.FromSeconds(60) };
            var frontEnds = nodes.Where(n => n.Url is not null).ToList();
            await Task.WhenAll(frontEnds.Select(f => f.WaitReadyAsync(http, nodes)));
            Console.WriteLine("processes: " + string.Join(", ", nodes.Select(n => $"{n.Name} (pid {n.Process.Id}, silo port {n.SiloPort})")) + $"; PostgreSQL on port {pg.Port}");

            // Each sender: a user of its own, registered on its front end, and a room of its own created there.
            for (var i = 0; i < senderCount; i++)
            {
                var url = frontEnds[i % frontEnds.Count].Url!;
                var user = await BenchHttp.SendAsync(http, HttpMethod.Post, $"{url}{V3}/register", null,
                    new JsonObject { ["username"] = $"sender{i}", ["password"] = "benchmark-password", ["auth"] = new JsonObject { ["type"] = "m.login.dummy" } });
                var token = user["access_token"]!.GetValue<string>();
                var room = (await BenchHttp.SendAsync(http, HttpMethod.Post, $"{url}{V3}/createRoom", token, new JsonObject()))["room_id"]!.GetValue<string>();
                load.Senders.Add(new Sender(i, url, token, room));
            }

            var running = load.StartAsync(http);
            Result result;
            try
            {
                await Task.Delay(warmup);
                var before = Sample(nodes, pg);
                var t0 = Stopwatch.GetTimestamp();
                await Task.Delay(measure);
                var t1 = Stopwatch.GetTimestamp();
                var after = Sample(nodes, pg);
                var writers = await WritersByPortAsync(db);

                var window = load.Senders.SelectMany(s => s.AcksBetween(t0, t1)).ToList();
                var latencies = window.Select(a => (double)a.Ms).ToList();
                latencies.Sort();
                var seconds = Stopwatch.GetElapsedTime(t0, t1).TotalSeconds;
                var processes = nodes.Select(n => new ProcessFigure(n.Name, (after.Ticks[n] - before.Ticks[n]) * 10.0,
                    writers.TryGetValue(n.SiloPort, out var w) && n.HostsGrains ? string.Join(" ", w.Order()) : "-")).ToList();
                var postgresMs = (after.PostgresTicks - before.PostgresTicks) * 10.0;
                var loadGeneratorMs = after.LoadGeneratorMs - before.LoadGeneratorMs;
                var outsideMs = (after.MachineTicks - before.MachineTicks) * 10.0 - processes.Sum(p => p.CpuMs) - postgresMs - loadGeneratorMs;
                result = new Result(shape, window.Count, seconds, Stats.Percentile(latencies, 50), Stats.Percentile(latencies, 99), processes,
                    postgresMs, loadGeneratorMs, outsideMs, 0, 0, null);
                Console.WriteLine($"window {Stopwatch.GetElapsedTime(load.Began, t0).TotalSeconds:F1}-{Stopwatch.GetElapsedTime(load.Began, t1).TotalSeconds:F1} s of the load " +
                                  $"(which began {Stopwatch.GetElapsedTime(nodes[0].Started, load.Began).TotalSeconds:F1} s after {nodes[0].Name} started): " +
                                  $"{result.Rate:F0} messages/s ({result.Messages} in {seconds:F1} s), p50 {result.P50:F1} ms, p99 {result.P99:F1} ms; CPU per message: " +
                                  string.Join(", ", processes.Select(p => $"{p.Name} {result.PerMessage(p.CpuMs):F3} ms")) +
                                  $", PostgreSQL {result.PerMessage(result.PostgresCpuMs):F3} ms, load generator {result.PerMessage(result.LoadGeneratorCpuMs):F3} ms; " +
                                  $"the machine outside the benchmark {outsideMs / seconds / 1000:F2} cores; " +
                                  $"events writers: {string.Join(", ", processes.Select(p => $"{p.Name} [{p.Writers}]"))}; failed so far {load.Failed}, 503s retried {load.Retried503}");

                if (shape.Failover) result = result with { Failover = await FailoverAsync(db, nodes, load) };
            }
            finally
            {
                load.Stop();
                var finished = await Task.WhenAny(running, Task.Delay(TimeSpan.FromSeconds(120)));
                if (finished != running) Console.WriteLine("warning: the senders did not finish within 120 s of the stop");
                foreach (var n in nodes) n.Report();
            }
            // Failed requests and retried 503s over the whole configuration (set-up excepted), the failover included;
            // and whether every acknowledged send is stored once.
            var (missing, twice) = await CheckStoredAsync(db, load);
            Console.WriteLine($"failed requests {load.Failed}, 503s retried {load.Retried503}; of {load.Senders.Sum(s => s.Acknowledged().Count)} acknowledged sends " +
                              $"{missing} not stored, {twice} transaction ids stored more than once");
            foreach (var s in load.FailedSamples) Console.WriteLine($"  failed: {s}");
            foreach (var s in load.RetriedSamples) Console.WriteLine($"  503: {s}");
            return result with { Failed = load.Failed, Retried503 = load.Retried503 };
        }
        finally
        {
            await StopAllAsync(nodes);
            await pg.StopAsync();
            try { Directory.Delete(folder, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    private static async Task<FailoverFigures> FailoverAsync(NpgsqlDataSource db, List<Node> nodes, Load load)
    {
        await Task.Delay(TimeSpan.FromSeconds(2));
        // Each sender's room's current events writer (the writer of its latest event), and where each writer lives.
        var roomWriter = new Dictionary<string, int>();
        await using (var cmd = db.CreateCommand("SELECT DISTINCT ON (room_id) room_id, stream_writer FROM events WHERE room_id = ANY($1) ORDER BY room_id, stream_position DESC"))
        {
            cmd.Parameters.AddWithValue(load.Senders.Select(s => s.Room).ToArray());
            await using var reader = await cmd.ExecuteReaderAsync();
            while (await reader.ReadAsync()) roomWriter[reader.GetString(0)] = reader.GetInt32(1);
        }
        var writers = await WritersByPortAsync(db);
        var candidates = nodes.Where(n => n.HostsGrains && writers.ContainsKey(n.SiloPort))
            .Select(n => (Node: n, Rooms: load.Senders.Where(s => roomWriter.TryGetValue(s.Room, out var w) && writers[n.SiloPort].Contains(w)).ToList()))
            .Where(c => c.Rooms.Count > 0).OrderByDescending(c => c.Rooms.Count).ToList();
        if (candidates.Count == 0) throw new InvalidOperationException("no silo holds an events writer of a sender's room");
        var (victim, affected) = candidates[0];
        Console.WriteLine($"killing {victim.Name} (pid {victim.Process.Id}), holding events writers [{string.Join(" ", writers[victim.SiloPort].Order())}] " +
                          $"of {affected.Count} of {load.Senders.Count} senders' rooms");

        var failedBefore = load.Failed;
        var retriedBefore = load.Retried503;
        var killAt = Stopwatch.GetTimestamp();
        Console.WriteLine($"  kill at {Stopwatch.GetElapsedTime(load.Began, killAt).TotalSeconds:F1} s of the load ({Stopwatch.GetElapsedTime(victim.Started, killAt).TotalSeconds:F1} s of {victim.Name}'s life)");
        victim.Process.Kill();
        victim.Process.WaitForExit(10_000);
        victim.Killed = true;

        // Until every room has an acknowledgement after the kill (at most 60 s), noting when the membership table
        // declares the silo dead; then 5 s more of load.
        double? declaredDead = null;
        var deadline = Stopwatch.GetTimestamp() + 60 * Stopwatch.Frequency;
        while (Stopwatch.GetTimestamp() < deadline)
        {
            if (declaredDead is null)
            {
                await using var cmd = db.CreateCommand("SELECT Status FROM OrleansMembershipTable WHERE Port = $1 ORDER BY Generation DESC LIMIT 1");
                cmd.Parameters.AddWithValue(victim.SiloPort);
                if (await cmd.ExecuteScalarAsync() is int status && status != 3)
                {
                    declaredDead = Stopwatch.GetElapsedTime(killAt).TotalSeconds;
                    Console.WriteLine($"  {victim.Name}'s membership row has status {status} {declaredDead:F1} s after the kill");
                }
            }
            if (declaredDead is not null && load.Senders.All(s => s.FirstAckAfter(killAt) is not null)) break;
            await Task.Delay(100);
        }
        await Task.Delay(TimeSpan.FromSeconds(5));
        var end = Stopwatch.GetTimestamp();

        var failover = new List<double>();
        var killToFirst = new List<double>();
        foreach (var s in load.Senders)
        {
            var last = s.LastAckAtOrBefore(killAt);
            var first = s.FirstAckAfter(killAt);
            var isAffected = affected.Contains(s);
            if (last is not null && first is not null && isAffected)
            {
                failover.Add(Stopwatch.GetElapsedTime(last.Value, first.Value).TotalSeconds);
                killToFirst.Add(Stopwatch.GetElapsedTime(killAt, first.Value).TotalSeconds);
            }
            Console.WriteLine($"  room of sender {s.Index} (events writer {(roomWriter.TryGetValue(s.Room, out var w) ? w : -1)}{(isAffected ? ", on the killed silo" : "")}): " +
                              (last is null || first is null ? "no acknowledgement on one side of the kill" :
                                  $"last ack before the kill -> first after {Stopwatch.GetElapsedTime(last.Value, first.Value).TotalSeconds:F2} s " +
                                  $"(kill -> first {Stopwatch.GetElapsedTime(killAt, first.Value).TotalSeconds:F2} s); longest gap after the kill {s.LongestGapAround(killAt, end):F2} s"));
        }
        var longest = load.Senders.Max(s => s.LongestGapAround(killAt, end));
        var ackedAfter = load.Senders.Sum(s => s.AcksBetween(killAt + 1, end).Count());
        if (failover.Count < affected.Count) Console.WriteLine($"warning: {affected.Count - failover.Count} affected rooms had no acknowledgement within 60 s of the kill");
        Console.WriteLine($"  events writers after the failover: {string.Join(", ", (await WritersByPortAsync(db)).Select(kv => $"{nodes.FirstOrDefault(n => n.SiloPort == kv.Key)?.Name ?? kv.Key.ToString()} [{string.Join(" ", kv.Value.Order())}]"))}");
        return new FailoverFigures($"{victim.Name} (of {nodes.Count(n => n.HostsGrains)} silos)", affected.Count, failover, killToFirst, longest, declaredDead,
            load.Failed - failedBefore, load.Retried503 - retriedBefore, ackedAfter, load.FailedSamples.ToList());
    }

    private static async Task<(int Missing, int Twice)> CheckStoredAsync(NpgsqlDataSource db, Load load)
    {
        var stored = new Dictionary<(string Room, string Txn), long>();
        await using (var cmd = db.CreateCommand("SELECT room_id, txn_id, count(*) FROM events WHERE room_id = ANY($1) AND txn_id IS NOT NULL GROUP BY 1, 2"))
        {
            cmd.Parameters.AddWithValue(load.Senders.Select(s => s.Room).ToArray());
            await using var reader = await cmd.ExecuteReaderAsync();
            while (await reader.ReadAsync()) stored[(reader.GetString(0), reader.GetString(1))] = reader.GetInt64(2);
        }
        var missing = load.Senders.Sum(s => s.Acknowledged().Count(n => !stored.ContainsKey((s.Room, $"c{s.Index}-{n}"))));
        return (missing, stored.Values.Count(c => c > 1));
    }

    /// <summary>The events writers each silo holds, by silo port (<c>SiloAddress.ToString()</c> is S{address}:{port}:{generation}).</summary>
    private static async Task<Dictionary<int, List<int>>> WritersByPortAsync(NpgsqlDataSource db)
    {
        var byPort = new Dictionary<int, List<int>>();
        await using var cmd = db.CreateCommand("SELECT writer, silo FROM stream_writers WHERE stream = 'events' AND silo IS NOT NULL");
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            var parts = reader.GetString(1).Split(':');
            if (parts.Length < 3 || !int.TryParse(parts[^2], out var port)) continue;
            if (!byPort.TryGetValue(port, out var list)) byPort[port] = list = [];
            list.Add(reader.GetInt32(0));
        }
        return byPort;
    }

    private static async Task WaitForActiveSilosAsync(NpgsqlDataSource db, int count, List<Node> nodes)
    {
        for (var i = 0; i < 480; i++)
        {
            foreach (var n in nodes.Where(n => n.Process.HasExited)) throw new InvalidOperationException($"{n.Name} exited early:\n{n.Tail()}");
            try
            {
                await using var cmd = db.CreateCommand("SELECT count(*) FROM OrleansMembershipTable WHERE Status = 3");
                if ((long)(await cmd.ExecuteScalarAsync())! >= count) return;
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UndefinedTable) { }
            await Task.Delay(250);
        }
        throw new TimeoutException($"fewer than {count} silos became active");
    }

    private static async Task StopAllAsync(List<Node> nodes)
    {
        // Front ends first, then the silos, each group at once: SIGTERM, then SIGKILL after 30 s.
        foreach (var group in new[] { nodes.Where(n => !n.HostsGrains).ToList(), nodes.Where(n => n.HostsGrains).ToList() })
            await Task.WhenAll(group.Select(n => Task.Run(n.Stop)));
        foreach (var n in nodes)
        {
            n.Process.WaitForExit(5_000); // the output readers drain
            n.CloseLog();
            n.Process.Dispose();
        }
    }

    private readonly record struct CpuSample(Dictionary<Node, long> Ticks, long PostgresTicks, double LoadGeneratorMs, long MachineTicks);

    private static CpuSample Sample(List<Node> nodes, EmbeddedPostgres pg) =>
        new(nodes.ToDictionary(n => n, n => n.Killed ? 0 : ProcTicks(n.Process.Id, children: false) ?? 0), PostgresTicks(pg.DataDirectory),
            Process.GetCurrentProcess().TotalProcessorTime.TotalMilliseconds, MachineBusyTicks());

    // All CPUs' time in processes (user, nice, system of /proc/stat's first line), in clock ticks: what the machine ran
    // besides this benchmark's processes tells how noisy a window was. (Interrupts, loopback traffic's included, are
    // counted apart by the kernel and left out.)
    private static long MachineBusyTicks()
    {
        try
        {
            var f = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            return long.Parse(f[1]) + long.Parse(f[2]) + long.Parse(f[3]);
        }
        catch (Exception e) when (e is IOException or FormatException or IndexOutOfRangeException) { return 0; }
    }

    // utime + stime of /proc/<pid>/stat (fields 14 and 15, after the parenthesised command name), with cutime + cstime
    // (16 and 17: children waited for) when asked; in clock ticks (USER_HZ, 100 on Linux).
    private static long? ProcTicks(int pid, bool children)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return long.Parse(fields[11]) + long.Parse(fields[12]) + (children ? long.Parse(fields[13]) + long.Parse(fields[14]) : 0);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException) { return null; }
    }

    /// <summary>Every process of the private PostgreSQL: the postmaster (its pid from <c>postmaster.pid</c>, or the
    /// process whose command line names the data directory), with the children it reaped (backends that ended), and
    /// its live children (backends, checkpointer, WAL writer...).</summary>
    private static long PostgresTicks(string dataDirectory)
    {
        string? postmaster = null;
        try { postmaster = File.ReadLines(Path.Combine(dataDirectory, "postmaster.pid")).First().Trim(); } catch (IOException) { }
        var stats = new List<(string Pid, string Parent)>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            var pid = Path.GetFileName(dir);
            if (!char.IsDigit(pid[0])) continue;
            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                stats.Add((pid, stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1]));
                if (postmaster is null && File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ').Contains(dataDirectory)) postmaster = pid;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
        if (postmaster is null) return 0;
        var ticks = ProcTicks(int.Parse(postmaster), children: true) ?? 0;
        foreach (var (pid, parent) in stats)
            if (parent == postmaster) ticks += ProcTicks(int.Parse(pid), children: false) ?? 0;
        return ticks;
    }

    private readonly record struct Ack(long At, float Ms, int N);

    private sealed class Sender(int index, string url, string token, string room)
    {
        private readonly List<Ack> _acks = [];
        public int Index { get; } = index;
        public string Url { get; } = url;
        public string Token { get; } = token;
        public string Room { get; } = room;
        public string Path { get; } = $"{V3}/rooms/{Uri.EscapeDataString(room)}/send/m.room.message/";

        public void Add(Ack ack) { lock (_acks) if (_acks.Count < 20_000_000) _acks.Add(ack); }

        public List<int> Acknowledged() { lock (_acks) return _acks.Select(a => a.N).ToList(); }

        public IEnumerable<Ack> AcksBetween(long from, long to) { lock (_acks) return _acks.Where(a => a.At >= from && a.At <= to).ToList(); }

        public long? LastAckAtOrBefore(long t) { lock (_acks) { var i = _acks.FindLastIndex(a => a.At <= t); return i < 0 ? null : _acks[i].At; } }

        public long? FirstAckAfter(long t) { lock (_acks) { var i = _acks.FindIndex(a => a.At > t); return i < 0 ? null : _acks[i].At; } }

        /// <summary>The longest time between two consecutive acknowledgements, the later one after <paramref name="kill"/>.</summary>
        public double LongestGapAround(long kill, long end)
        {
            lock (_acks)
            {
                var longest = 0.0;
                var i = _acks.FindLastIndex(a => a.At <= kill);
                if (i < 0) return double.NaN;
                for (; i + 1 < _acks.Count && _acks[i].At <= end; i++)
                    longest = Math.Max(longest, Stopwatch.GetElapsedTime(_acks[i].At, _acks[i + 1].At).TotalSeconds);
                return longest;
            }
        }
    }

    private sealed class Load
    {
        private readonly CancellationTokenSource _stop = new();
        private long _failed;
        private long _retried;
        public List<Sender> Senders { get; } = [];
        public System.Collections.Concurrent.ConcurrentQueue<string> FailedSamples { get; } = new();
        public System.Collections.Concurrent.ConcurrentQueue<string> RetriedSamples { get; } = new();
        public long Began { get; private set; }
        public long Failed => Interlocked.Read(ref _failed);
        public long Retried503 => Interlocked.Read(ref _retried);

        public void Stop() => _stop.Cancel();

        public Task StartAsync(HttpClient http)
        {
            Began = Stopwatch.GetTimestamp();
            return Task.WhenAll(Senders.Select(s => Task.Run(() => SendLoopAsync(http, s))));
        }

        private async Task SendLoopAsync(HttpClient http, Sender s)
        {
            const string body = "{\"msgtype\":\"m.text\",\"body\":\"cluster benchmark message with a little text in it\"}";
            for (var n = 0; n < MaxSendsPerSender && !_stop.IsCancellationRequested; n++)
            {
                var started = Stopwatch.GetTimestamp();
                for (var attempt = 1; ; attempt++)
                {
                    string? failure = null;
                    try
                    {
                        // In-flight requests are not cancelled at the stop: they finish (or time out after 60 s).
                        using var request = new HttpRequestMessage(HttpMethod.Put, $"{s.Url}{s.Path}c{s.Index}-{n}");
                        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", s.Token);
                        request.Content = new StringContent(body, Encoding.UTF8, "application/json");
                        using var response = await http.SendAsync(request);
                        if (response.StatusCode == HttpStatusCode.OK)
                        {
                            var at = Stopwatch.GetTimestamp();
                            s.Add(new Ack(at, (float)Stopwatch.GetElapsedTime(started, at).TotalMilliseconds, n));
                            break;
                        }
                        if (response.StatusCode == HttpStatusCode.ServiceUnavailable && attempt < MaxAttempts)
                        {
                            if (Interlocked.Increment(ref _retried) <= 10)
                                RetriedSamples.Enqueue($"[{Stopwatch.GetElapsedTime(Began).TotalSeconds:F1} s] sender {s.Index} txn c{s.Index}-{n} attempt {attempt}: " +
                                                       $"503 Retry-After {response.Headers.RetryAfter} {await response.Content.ReadAsStringAsync()}");
                            var wait = response.Headers.RetryAfter?.Delta ?? TimeSpan.FromSeconds(1);
                            await Task.Delay(wait > TimeSpan.FromSeconds(2) ? TimeSpan.FromSeconds(2) : wait < TimeSpan.Zero ? TimeSpan.Zero : wait);
                            continue;
                        }
                        failure = $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}";
                    }
                    catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
                    {
                        failure = $"{e.GetType().Name}: {e.Message}";
                    }
                    Interlocked.Increment(ref _failed);
                    if (FailedSamples.Count < 10) FailedSamples.Enqueue($"[{Stopwatch.GetElapsedTime(Began).TotalSeconds:F1} s] sender {s.Index} txn c{s.Index}-{n} attempt {attempt}: {failure}");
                    await Task.Delay(100); // a failed request does not become a busy loop
                    break;
                }
            }
        }
    }

    /// <summary>One homeserver process started from a build's binaries (also used by <see cref="ScaleProcessBenchmark"/>).</summary>
    internal sealed class Node
    {
        private readonly Queue<string> _tail = new();
        private readonly Dictionary<string, int> _levels = new();
        private readonly Dictionary<string, int> _categories = new();
        private readonly List<string> _firstErrors = [];
        private string? _pendingHeader;
        private StreamWriter? _log;
        private int _logLines;

        public required Process Process { get; init; }
        public required string Name { get; init; }
        public required int SiloPort { get; init; }
        public string? Url { get; init; }
        public bool HostsGrains { get; init; }
        public bool Killed { get; set; }
        public long Started { get; } = Stopwatch.GetTimestamp();

        /// <summary>Starts <paramref name="project"/>'s Release build; on free loopback ports unless <paramref name="ports"/>
        /// names them (a process restarted on its own ports, as a deploy does, takes over its old silo's place at once).</summary>
        public static Node Start(string root, string project, string name, bool http, string[] args, (int Http, int Silo, int Gateway)? ports = null)
        {
            var dll = System.IO.Path.Combine(root, project, "bin", "Release", "net10.0", $"Homeserver.{project}.dll");
            if (!File.Exists(dll)) throw new FileNotFoundException($"build {project} first: dotnet build -c Release {project}", dll);
            var siloPort = ports?.Silo ?? LoopbackPorts.Free();
            var httpPort = http ? ports?.Http ?? LoopbackPorts.Free() : 0;
            var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            psi.ArgumentList.Add(dll);
            if (http) psi.ArgumentList.Add($"--urls=http://127.0.0.1:{httpPort}");
            psi.ArgumentList.Add($"--Homeserver:Cluster:SiloPort={siloPort}");
            psi.ArgumentList.Add($"--Homeserver:Cluster:GatewayPort={ports?.Gateway ?? LoopbackPorts.Free()}");
            // Silo processes serve /metrics on a port of their own; several on one machine need one each.
            if (!http) psi.ArgumentList.Add($"--Homeserver:Metrics:Port={LoopbackPorts.Free()}");
            foreach (var a in args) psi.ArgumentList.Add(a);
            var node = new Node
            {
                Process = Process.Start(psi)!, Name = name, SiloPort = siloPort, Url = http ? $"http://127.0.0.1:{httpPort}" : null,
                HostsGrains = !args.Contains("--Homeserver:Role=FrontEnd"),
            };
            // BENCH_LOG_DIR: each process's whole output, each line stamped with the seconds since its start, goes to a file there.
            if (Environment.GetEnvironmentVariable("BENCH_LOG_DIR") is { Length: > 0 } logs)
            {
                Directory.CreateDirectory(logs);
                node._log = new StreamWriter(System.IO.Path.Combine(logs, $"{name.Replace(' ', '-')}-{node.Process.Id}.log")) { AutoFlush = true };
            }
            node.Process.OutputDataReceived += (_, e) => node.Line(e.Data);
            node.Process.ErrorDataReceived += (_, e) => node.Line(e.Data);
            node.Process.BeginOutputReadLine();
            node.Process.BeginErrorReadLine();
            return node;
        }

        // The console logger writes "warn: Category[id]" and the message on the next line.
        private void Line(string? line)
        {
            if (line is null) return;
            lock (_tail)
            {
                if (_log is not null && _logLines++ < 1_000_000) _log.WriteLine($"[{Stopwatch.GetElapsedTime(Started).TotalSeconds:F3}] {line}");
                _tail.Enqueue(line);
                if (_tail.Count > 200) _tail.Dequeue();
                if (_pendingHeader is not null)
                {
                    _firstErrors.Add($"{_pendingHeader} {line.Trim()}");
                    _pendingHeader = null;
                }
                if (line.Length > 6 && line[4] == ':' && line[5] == ' ' && line[..4] is "warn" or "fail" or "crit")
                {
                    _levels[line[..4]] = _levels.GetValueOrDefault(line[..4]) + 1;
                    var category = $"{line[..4]} {line[6..].Split('[')[0]}";
                    _categories[category] = _categories.GetValueOrDefault(category) + 1;
                    // The first message of each level and category is kept as an example.
                    if (_categories[category] == 1 && _firstErrors.Count < 12) _pendingHeader = $"[{Stopwatch.GetElapsedTime(Started).TotalSeconds:F1} s] {line}";
                }
            }
        }

        public string Tail() { lock (_tail) return string.Join("\n", _tail); }

        public void CloseLog() { lock (_tail) { _log?.Dispose(); _log = null; } }

        public void Report()
        {
            lock (_tail)
            {
                if (_levels.Count == 0) { Console.WriteLine($"  {Name}: no warnings or errors logged"); return; }
                Console.WriteLine($"  {Name}: logged {string.Join(", ", _levels.Select(l => $"{l.Value} {l.Key}"))}: " +
                                  string.Join("; ", _categories.OrderByDescending(c => c.Value).Take(6).Select(c => $"{c.Key} x{c.Value}")));
                foreach (var e in _firstErrors) Console.WriteLine($"    {(e.Length > 300 ? e[..300] + "..." : e)}");
            }
        }

        public async Task WaitReadyAsync(HttpClient http, List<Node> all)
        {
            for (var i = 0; i < 480; i++)
            {
                foreach (var n in all.Where(n => n.Process.HasExited)) throw new InvalidOperationException($"{n.Name} exited early:\n{n.Tail()}");
                try
                {
                    using var r = await http.GetAsync($"{Url}/health/ready");
                    if (r.IsSuccessStatusCode) return;
                }
                catch (HttpRequestException) { }
                await Task.Delay(250);
            }
            throw new TimeoutException($"{Name} never became ready:\n{Tail()}");
        }

        public void Stop()
        {
            try
            {
                if (Process.HasExited) return;
                Process.Start("kill", ["-TERM", Process.Id.ToString()])?.WaitForExit(10_000);
                if (!Process.WaitForExit(30_000))
                {
                    Console.WriteLine($"  {Name} did not stop within 30 s of SIGTERM; killed");
                    Process.Kill(entireProcessTree: true);
                    Process.WaitForExit(10_000);
                }
            }
            catch (InvalidOperationException) { }
        }
    }
}

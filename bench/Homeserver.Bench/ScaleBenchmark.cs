using System.Buffers;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Runtime;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Homeserver.Bench;

/// <summary>
/// Issue 13's benchmark: the account shape of the SBRC 2026 homeserver study (N users, each in the same R public
/// rooms, a few messages per room), built through the HTTP API on two silos as fast as the server takes it; then
/// initial syncs of one account, cold (the first after restarting the silos over the same PostgreSQL, as after a
/// deploy; the JIT stays warm, this being one process) and warm: timeline limit 1 with lazy-loaded members, and
/// timeline limit 10 with the full state. With the process's resident memory and managed heap after building and
/// after syncing.
/// </summary>
public static class ScaleBenchmark
{
    private const string V3 = "/_matrix/client/v3";
    internal const string LazyFilter = """{"room":{"timeline":{"limit":1},"state":{"lazy_load_members":true}}}""";
    internal const string FullFilter = """{"room":{"timeline":{"limit":10}}}""";

    public static async Task RunAsync(int rooms, int members, int messagesPerRoom, int runs, int warmRepeats)
    {
        await using var cluster = await BenchCluster.StartAsync(2);
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 64, PooledConnectionLifetime = TimeSpan.FromMinutes(30) })
        { Timeout = TimeSpan.FromMinutes(5) };
        var gc = GC.GetConfigurationVariables();
        Console.WriteLine($"GC: {(GCSettings.IsServerGC ? "server" : "workstation")}, " +
                          string.Join(", ", gc.Where(kv => kv.Value is not (0L or 0UL or false or "")).Select(kv => $"{kv.Key} {kv.Value}")) +
                          $"; {Environment.ProcessorCount} processors; load {Load()}");

        Console.WriteLine($"memory with both silos started: {Memory()}");

        var build = Stopwatch.StartNew();
        var shape = await ScaleShape.BuildAsync(http, cluster.Urls, members, rooms, messagesPerRoom, concurrency: 32);
        Console.WriteLine($"built {members} users x {rooms} rooms ({shape.Joins} joins at {shape.JoinsPerSecond:F0}/s, {rooms * messagesPerRoom} messages) in {build.Elapsed.TotalSeconds:F1} s");
        Console.WriteLine($"memory after building: {Memory()}");

        var syncer = shape.Accounts[0];
        // Memory is measured on the silos that built the shape, before any restart: silos stopped in this process are
        // not all collected (the host keeps some of them reachable), which a real deploy, a new process, does not have.
        foreach (var (name, filter) in new[] { ("lazy", LazyFilter), ("full", FullFilter) })
            await FirstSyncAsync(http, cluster.Urls[syncer.Silo], syncer.Token, name, filter, rooms, members);
        Console.WriteLine($"memory after building and syncing: {Memory()}");
        Console.WriteLine($"after a full collection: {Memory(collect: true)}");
        // BENCH_GCDUMP_PAUSE=N: N seconds to take a heap snapshot of the silos that built and synced the shape
        // (dotnet-gcdump collect -p <pid>) before the restarts.
        if (int.TryParse(Environment.GetEnvironmentVariable("BENCH_GCDUMP_PAUSE"), out var pause) && pause > 0)
        {
            Console.WriteLine($"pid {Environment.ProcessId}: pausing {pause} s for a heap snapshot");
            await Task.Delay(TimeSpan.FromSeconds(pause));
        }
        Console.WriteLine($"caches: {string.Join(", ", cluster.Silos.Select((s, i) => $"silo {i}: " + string.Join(" ", s.Services.GetRequiredService<Homeserver.Caches.CacheRegistry>().Status().Where(c => c.Count > 0).Select(c => $"{c.Name}={c.Count}"))))}");

        var results = new Dictionary<string, List<double>> { ["lazy cold"] = [], ["lazy warm"] = [], ["full cold"] = [], ["full warm"] = [] };
        // CPU per sync (.NET process and PostgreSQL) is what a sync costs whatever else loads this shared machine.
        var cpuMs = results.Keys.ToDictionary(k => k, _ => new List<double>());
        var cpu = new CpuMeter(cluster.Postgres.DataDirectory);
        var sizes = new Dictionary<string, long>();
        for (var run = 0; run < runs; run++)
        {
            foreach (var (name, filter) in new[] { ("lazy", LazyFilter), ("full", FullFilter) })
            {
                await cluster.RestartSilosAsync();
                await WaitReadyAsync(http, cluster);
                var url = cluster.Urls[syncer.Silo];
                var before = cpu.Sample();
                var (ms, bytes, _) = await InitialSyncAsync(http, url, syncer.Token, filter);
                var used = cpu.Sample() - before;
                results[$"{name} cold"].Add(ms);
                cpuMs[$"{name} cold"].Add(used.ProcessMs + used.PostgresMs);
                sizes[name] = bytes;
                for (var i = 0; i < warmRepeats; i++)
                {
                    before = cpu.Sample();
                    results[$"{name} warm"].Add((await InitialSyncAsync(http, url, syncer.Token, filter)).Ms);
                    used = cpu.Sample() - before;
                    cpuMs[$"{name} warm"].Add(used.ProcessMs + used.PostgresMs);
                }
            }
            Console.WriteLine($"run {run + 1}/{runs}: " + string.Join(", ", results.Select(r => $"{r.Key} {r.Value[^1]:F0} ms")) + $"; load {Load()}");
        }
        Console.WriteLine($"initial sync of one account in {rooms} rooms of {members} members ({runs} runs, {warmRepeats} warm repeats each; medians):");
        foreach (var (name, ms) in results)
        {
            ms.Sort();
            var used = cpuMs[name];
            used.Sort();
            Console.WriteLine($"  {name,-10} median {Stats.Percentile(ms, 50),7:F0} ms  (min {ms[0]:F0}, max {ms[^1]:F0}); CPU median {Stats.Percentile(used, 50):F0} ms (.NET + PostgreSQL); response {sizes[name.Split(' ')[0]] / 1024.0 / 1024.0:F2} MB");
        }
        Console.WriteLine($"memory at the end ({runs * 2} restarts later, stopped silos not all collected): {Memory(collect: true)}");
    }

    /// <summary>A deploy sends traffic to a silo once its readiness probe passes (in the cluster, its reader at every
    /// writer's position): the cold sync is timed from there, not from process start.</summary>
    private static async Task WaitReadyAsync(HttpClient http, BenchCluster cluster)
    {
        foreach (var url in cluster.Urls)
            for (var deadline = DateTime.UtcNow.AddSeconds(60); ; await Task.Delay(100))
            {
                using var response = await http.GetAsync($"{url}/health/ready");
                if (response.IsSuccessStatusCode) break;
                if (DateTime.UtcNow > deadline) throw new TimeoutException($"{url} not ready after 60 s");
            }
    }

    /// <summary>The first sync of a kind, timed and checked. In a method of its own so that nothing of the response
    /// stays referenced from the caller's frame when memory is measured after it.</summary>
    internal static async Task FirstSyncAsync(HttpClient http, string url, string token, string name, string filter, int rooms, int members)
    {
        var first = await InitialSyncAsync(http, url, token, filter, keepBody: true);
        Console.WriteLine($"first {name} sync on the silos that built the shape: {first.Ms:F0} ms, {first.Bytes / 1024.0 / 1024.0:F2} MB");
        Check(name, first.Body!.Value, rooms, members);
    }

    /// <summary>One initial sync, timed to its last byte. The body is kept only when asked for (the first syncs are
    /// checked), in 64 KB chunks: read whole through HttpContent, a 23 MB response was buffered in arrays doubling up to
    /// 32 MB and then copied, about 80 MB of garbage on the large object heap of this process just before its resident
    /// memory, the silos' measure, is read.</summary>
    internal static async Task<(double Ms, long Bytes, ReadOnlySequence<byte>? Body)> InitialSyncAsync(HttpClient http, string url, string token,
        string filter, bool keepBody = false)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"{url}{V3}/sync?timeout=0&filter={Uri.EscapeDataString(filter)}");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        var started = Stopwatch.GetTimestamp();
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        await using var stream = await response.Content.ReadAsStreamAsync();
        keepBody |= !response.IsSuccessStatusCode;
        Chunk? head = null, tail = null;
        var buffer = new byte[Chunk.Size];
        long bytes = 0;
        for (int read; (read = await stream.ReadAtLeastAsync(buffer, Chunk.Size, throwOnEndOfStream: false)) > 0; bytes += read)
        {
            if (!keepBody) continue;
            var chunk = new Chunk(buffer.AsMemory(0, read), bytes);
            if (tail is null) head = chunk;
            else tail.Append(chunk);
            tail = chunk;
            buffer = new byte[Chunk.Size];
        }
        var ms = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        var body = head is null ? (keepBody ? ReadOnlySequence<byte>.Empty : (ReadOnlySequence<byte>?)null) : new ReadOnlySequence<byte>(head, 0, tail!, tail!.Memory.Length);
        if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"sync: {(int)response.StatusCode} {System.Text.Encoding.UTF8.GetString(body!.Value.ToArray())}");
        return (ms, bytes, body);
    }

    private sealed class Chunk : ReadOnlySequenceSegment<byte>
    {
        public const int Size = 64 * 1024;

        public Chunk(ReadOnlyMemory<byte> memory, long runningIndex) => (Memory, RunningIndex) = (memory, runningIndex);

        public void Append(Chunk next) => Next = next;
    }

    /// <summary>Says what the response holds, so a fast answer that left something out is seen: rooms, and member
    /// events in the state blocks (lazy: only the timeline's senders' and the syncer's own). Read a room at a time: a
    /// tree of the whole 23 MB response would be a few hundred MB of this process's memory just before it is measured.</summary>
    private static void Check(string name, ReadOnlySequence<byte> body, int rooms, int members)
    {
        long roomCount = 0, memberEvents = 0, stateEvents = 0, timelineEvents = 0;
        var reader = new Utf8JsonReader(body);
        reader.Read();
        if (Find(ref reader, "rooms"u8) && Find(ref reader, "join"u8))
            // On "join"'s start: each member is a room id and the room's object, parsed alone.
            for (reader.Read(); reader.TokenType == JsonTokenType.PropertyName; reader.Read())
            {
                reader.Read();
                var room = JsonNode.Parse(ref reader)!;
                roomCount++;
                foreach (var e in room["state"]!["events"]!.AsArray())
                {
                    stateEvents++;
                    if (e!["type"]!.GetValue<string>() == "m.room.member") memberEvents++;
                }
                timelineEvents += room["timeline"]!["events"]!.AsArray().Count;
            }
        Console.WriteLine($"  {name}: {roomCount}/{rooms} rooms, {timelineEvents} timeline events, {stateEvents} state events of which {memberEvents} members ({(double)memberEvents / Math.Max(1, roomCount):F1} a room of {members})");
        if (roomCount != rooms) throw new InvalidOperationException($"{name} sync returned {roomCount} rooms, expected {rooms}");
    }

    /// <summary>With the reader on an object's start: moves it onto the value of member <paramref name="name"/>, skipping
    /// the members before it; false when the object has none.</summary>
    private static bool Find(ref Utf8JsonReader reader, ReadOnlySpan<byte> name)
    {
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var found = reader.ValueTextEquals(name);
            reader.Read();
            if (found) return true;
            reader.Skip();
        }
        return false;
    }

    internal static string Memory(bool collect = false)
    {
        if (collect)
        {
            GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
            GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        }
        var info = GC.GetGCMemoryInfo();
        return $"resident {ResidentBytes() / 1024.0 / 1024.0:F0} MB (VmRSS), managed heap {GC.GetTotalMemory(false) / 1024.0 / 1024.0:F0} MB live, " +
               $"{info.HeapSizeBytes / 1024.0 / 1024.0:F0} MB heap after the last GC, {info.TotalCommittedBytes / 1024.0 / 1024.0:F0} MB committed";
    }

    /// <summary>A process's resident size (<c>VmRSS</c>): this one's, or another's by pid.</summary>
    internal static long ResidentBytes(int? pid = null)
    {
        if (OperatingSystem.IsLinux())
            foreach (var line in File.ReadLines($"/proc/{pid?.ToString() ?? "self"}/status"))
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                    return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0]) * 1024;
        return pid is null ? Environment.WorkingSet : System.Diagnostics.Process.GetProcessById(pid.Value).WorkingSet64;
    }

    internal static string Load() => OperatingSystem.IsLinux() ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "?";
}

/// <summary>
/// The account shape of issue 13, built through the HTTP API with parallel requests: <c>users</c> users (alternately
/// on the two silos), <c>rooms</c> public rooms that every user joins, <c>messagesPerRoom</c> messages in each from
/// members taken in turn. Reusable by other benchmarks.
/// </summary>
public static class ScaleShape
{
    private const string V3 = "/_matrix/client/v3";

    public sealed record Account(string UserId, string Token, int Silo);

    public sealed record Shape(List<Account> Accounts, List<string> RoomIds, int Joins, double JoinsPerSecond);

    public static async Task<Shape> BuildAsync(HttpClient http, IReadOnlyList<string> urls, int users, int rooms, int messagesPerRoom, int concurrency)
    {
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = concurrency };
        var accounts = new Account[users];
        await Parallel.ForEachAsync(Enumerable.Range(0, users), parallel, async (i, ct) =>
        {
            var silo = i % urls.Count;
            var r = await BenchHttp.SendAsync(http, HttpMethod.Post, urls[silo] + $"{V3}/register", null,
                new JsonObject { ["username"] = $"scale{i}", ["password"] = "benchmark-password", ["auth"] = new JsonObject { ["type"] = "m.login.dummy" } }, ct);
            accounts[i] = new Account(r["user_id"]!.GetValue<string>(), r["access_token"]!.GetValue<string>(), silo);
        });
        var roomIds = new string[rooms];
        await Parallel.ForEachAsync(Enumerable.Range(0, rooms), parallel, async (i, ct) =>
        {
            var owner = accounts[i % users];
            var r = await BenchHttp.SendAsync(http, HttpMethod.Post, urls[owner.Silo] + $"{V3}/createRoom", owner.Token,
                new JsonObject { ["preset"] = "public_chat", ["name"] = $"scale room {i}" }, ct);
            roomIds[i] = r["room_id"]!.GetValue<string>();
        });
        // Joins interleave rooms (user-major order would queue every worker behind the same room's state writes).
        var joins = new List<(int User, int Room)>();
        for (var u = 0; u < users; u++)
            for (var r = 0; r < rooms; r++)
                if (r % users != u) joins.Add((u, r));
        var joining = Stopwatch.StartNew();
        await Parallel.ForEachAsync(joins, parallel, async (j, ct) =>
        {
            var a = accounts[j.User];
            await BenchHttp.SendAsync(http, HttpMethod.Post, urls[a.Silo] + $"{V3}/join/{Uri.EscapeDataString(roomIds[j.Room])}", a.Token, new JsonObject(), ct);
        });
        var joinRate = joins.Count / joining.Elapsed.TotalSeconds;
        var messages = Enumerable.Range(0, rooms * messagesPerRoom);
        await Parallel.ForEachAsync(messages, parallel, async (m, ct) =>
        {
            var (room, n) = (m % rooms, m / rooms);
            var a = accounts[(room + n * 7) % users];
            await BenchHttp.SendAsync(http, HttpMethod.Put, urls[a.Silo] + $"{V3}/rooms/{Uri.EscapeDataString(roomIds[room])}/send/m.room.message/scale{m}",
                a.Token, new JsonObject { ["msgtype"] = "m.text", ["body"] = $"message {n} in room {room}" }, ct);
        });
        return new Shape([.. accounts], [.. roomIds], joins.Count, joinRate);
    }
}

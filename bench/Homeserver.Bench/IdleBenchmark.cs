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
        var common = new[] { "--Homeserver:WriterRebalanceDelay=00:00:00", "--Logging:LogLevel:Default=Warning", "--Homeserver:PasswordHashCost=4" };
        using var api = Start(root, "Api", [$"--urls=http://127.0.0.1:{httpPort}", $"--Homeserver:DataDirectory={data}",
            $"--Homeserver:Cluster:SiloPort={apiSiloPort}", $"--Homeserver:Cluster:GatewayPort={LoopbackPorts.Free()}", .. common]);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{httpPort}") };
        await WaitReadyAsync(http, api);
        var pgPort = (await File.ReadAllTextAsync(Path.Combine(data, "postgres", "port"))).Trim();
        // PrimarySiloPort is for builds that still cluster through localhost (a primary silo); newer ones ignore it.
        using var follower = Start(root, "Silo", [$"--Homeserver:Postgres=Host=127.0.0.1;Port={pgPort};Username=postgres;Database=postgres",
            $"--Homeserver:Cluster:SiloPort={LoopbackPorts.Free()}", $"--Homeserver:Cluster:GatewayPort={LoopbackPorts.Free()}",
            $"--Homeserver:Cluster:PrimarySiloPort={apiSiloPort}", .. common]);
        try
        {
            var register = await http.PostAsync("/_matrix/client/v3/register", new StringContent(
                "{\"username\":\"idlebench\",\"password\":\"pw-123456789\",\"auth\":{\"type\":\"m.login.dummy\"}}", Encoding.UTF8, "application/json"));
            var token = JsonNode.Parse(await register.Content.ReadAsStringAsync())!["access_token"]!.GetValue<string>();
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
            var created = await http.PostAsync("/_matrix/client/v3/createRoom", new StringContent("{}", Encoding.UTF8, "application/json"));
            var room = Uri.EscapeDataString(JsonNode.Parse(await created.Content.ReadAsStringAsync())!["room_id"]!.GetValue<string>());

            Console.WriteLine($"binaries {root}; warm-up {warmup.TotalSeconds:F0} s, then {measure.TotalSeconds:F0} s per phase");
            await Task.Delay(warmup);
            var idle = await MeasureAsync(follower.Process, api.Process, measure, work: null);
            Console.WriteLine($"idle:        following silo {idle.Follower:F2} % of a core, front end + silo {idle.FrontEnd:F2} %");

            var sent = 0;
            var interval = TimeSpan.FromSeconds(1.0 / eventsPerSecond);
            var next = Stopwatch.GetTimestamp();
            var busy = await MeasureAsync(follower.Process, api.Process, measure, async () =>
            {
                var r = await http.PutAsync($"/_matrix/client/v3/rooms/{room}/send/m.room.message/i{sent++}",
                    new StringContent("{\"msgtype\":\"m.text\",\"body\":\"tick\"}", Encoding.UTF8, "application/json"));
                r.EnsureSuccessStatusCode();
                next += (long)(interval.TotalSeconds * Stopwatch.Frequency);
                var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), next);
                if (wait > TimeSpan.Zero) await Task.Delay(wait);
            });
            Console.WriteLine($"{eventsPerSecond} events/s: following silo {busy.Follower:F2} % of a core, front end + silo {busy.FrontEnd:F2} % " +
                              $"({sent / measure.TotalSeconds:F1} events/s sent)");
        }
        finally
        {
            follower.Stop();
            api.Stop();
            try { Directory.Delete(data, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>CPU of both processes, in % of one core, while <paramref name="work"/> (if any) runs in a loop for the
    /// period.</summary>
    private static async Task<(double Follower, double FrontEnd)> MeasureAsync(Process follower, Process frontEnd, TimeSpan period, Func<Task>? work)
    {
        var f0 = CpuSeconds(follower);
        var a0 = CpuSeconds(frontEnd);
        var clock = Stopwatch.StartNew();
        while (work is not null && clock.Elapsed < period) await work();
        var left = period - clock.Elapsed;
        if (left > TimeSpan.Zero) await Task.Delay(left);
        var elapsed = clock.Elapsed.TotalSeconds;
        return ((CpuSeconds(follower) - f0) * 100 / elapsed, (CpuSeconds(frontEnd) - a0) * 100 / elapsed);
    }

    // utime + stime of /proc/<pid>/stat (fields 14 and 15, after the parenthesised command name), in seconds.
    private static double CpuSeconds(Process process)
    {
        var stat = File.ReadAllText($"/proc/{process.Id}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (long.Parse(fields[11]) + long.Parse(fields[12])) / 100.0; // USER_HZ is 100 on Linux
    }

    private sealed class Child(Process process) : IDisposable
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
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
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

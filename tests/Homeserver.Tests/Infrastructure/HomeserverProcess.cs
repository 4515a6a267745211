using System.Diagnostics;
using System.Net;
using System.Text;
using Homeserver.Hosting;

namespace Homeserver.Tests.Infrastructure;

/// <summary>
/// One homeserver process, started from the built binaries exactly as <c>dotnet run --project Api|Silo</c> runs them,
/// on loopback ports of its own and a shared database.
/// </summary>
public sealed class HomeserverProcess : IDisposable
{
    private readonly StringBuilder _output = new();

    public Process Process { get; }
    public string Url { get; }
    public int SiloPort { get; }
    /// <summary>Where a <c>Silo</c> process serves <c>/metrics</c> (0 for an <c>Api</c> process: on its API port).</summary>
    public int MetricsPort { get; private init; }
    public string Output { get { lock (_output) return _output.ToString(); } }

    private HomeserverProcess(Process process, string url, int siloPort)
    {
        Process = process;
        Url = url;
        SiloPort = siloPort;
    }

    /// <param name="project">"Api" (front end with a silo) or "Silo" (a silo without HTTP).</param>
    /// <param name="database">A PostgreSQL connection string, or null for the embedded default (then pass
    /// <c>--Homeserver:DataDirectory=…</c> in <paramref name="args"/>).</param>
    public static HomeserverProcess Start(string project, string? database, bool http, params string[] args) =>
        StartIn(launcher: [], project, database, http, args);

    /// <param name="launcher">A command the process runs under, e.g. <c>["ip", "netns", "exec", "ns1"]</c> to give it a
    /// network namespace of its own (it must exec the command it is given, so the process is the server itself).</param>
    public static HomeserverProcess StartIn(string[] launcher, string project, string? database, bool http, params string[] args)
    {
        var httpPort = LoopbackPorts.Free();
        var siloPort = LoopbackPorts.Free();
        var psi = new ProcessStartInfo(launcher.Length > 0 ? launcher[0] : "dotnet")
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (var a in launcher.Skip(1)) psi.ArgumentList.Add(a);
        if (launcher.Length > 0) psi.ArgumentList.Add("dotnet");
        psi.ArgumentList.Add(Binary(project));
        if (http)
        {
            psi.ArgumentList.Add("--urls");
            psi.ArgumentList.Add($"http://127.0.0.1:{httpPort}");
        }
        if (database is not null) psi.ArgumentList.Add($"--Homeserver:Postgres={database}");
        psi.ArgumentList.Add($"--Homeserver:Cluster:SiloPort={siloPort}");
        psi.ArgumentList.Add($"--Homeserver:Cluster:GatewayPort={LoopbackPorts.Free()}");
        psi.ArgumentList.Add("--Homeserver:PasswordHashCost=4");
        psi.ArgumentList.Add("--Homeserver:RateLimits:Enabled=false"); // tests register and send fast from one address
        psi.ArgumentList.Add("--Homeserver:WriterRebalanceDelay=00:00:00");
        // A silo without HTTP serves /metrics on a port of its own (9464 unless told): one each, as tests run in parallel.
        var metricsPort = project == "Silo" ? LoopbackPorts.Free() : 0;
        if (project == "Silo") psi.ArgumentList.Add($"--Homeserver:Metrics:Port={metricsPort}");
        foreach (var a in args) psi.ArgumentList.Add(a);
        var process = Process.Start(psi)!;
        var server = new HomeserverProcess(process, $"http://127.0.0.1:{httpPort}", siloPort) { MetricsPort = metricsPort };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (server._output) server._output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (server._output) server._output.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return server;
    }

    public async Task WaitReadyAsync(HttpClient http)
    {
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (DateTime.UtcNow < deadline)
        {
            Assert.False(Process.HasExited, $"the process exited early:\n{Output}");
            try
            {
                using var r = await http.GetAsync($"{Url}/health/ready");
                if (r.StatusCode == HttpStatusCode.OK) return;
            }
            catch (HttpRequestException) { }
            await Task.Delay(250);
        }
        Assert.Fail($"never became ready:\n{Output}");
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);

    /// <summary>SIGTERM: the host stops gracefully (the silo leaves the cluster, handing its grains over).</summary>
    public void Terminate()
    {
        Assert.Equal(0, kill(Process.Id, 15));
        Assert.True(Process.WaitForExit(60_000), "did not stop within a minute of SIGTERM");
    }

    /// <summary>SIGKILL: the process vanishes without a word to the cluster.</summary>
    public void Kill9()
    {
        Process.Kill(entireProcessTree: true);
        Process.WaitForExit(10_000);
    }

    public void Dispose()
    {
        if (!Process.HasExited) Process.Kill(entireProcessTree: true);
        Process.Dispose();
    }

    /// <summary>The built entry point of a project, in the tests' own configuration (Debug or Release).</summary>
    public static string Binary(string project)
    {
        // tests/Homeserver.Tests/bin/{Configuration}/net10.0 → {project}/bin/{Configuration}/net10.0/Homeserver.{project}.dll
        var here = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        var configuration = here.Parent!.Name;
        var root = here;
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "Homeserver.sln"))) root = root.Parent;
        Assert.NotNull(root);
        var dll = Path.Combine(root!.FullName, project, "bin", configuration, here.Name, $"Homeserver.{project}.dll");
        Assert.True(File.Exists(dll), $"{dll} was not built");
        return dll;
    }
}

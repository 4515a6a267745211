using System.Diagnostics;
using System.Runtime.InteropServices;
using Homeserver.Hosting;
using Microsoft.Extensions.Logging;

namespace Homeserver.Storage;

/// <summary>
/// A private PostgreSQL cluster run from the machine's own <c>initdb</c>/<c>pg_ctl</c>, created on first start under
/// a data folder and reused (data kept) afterwards. PostgreSQL refuses to run as root, so when we are root the
/// binaries run as the <c>postgres</c> system user and the folder is handed to it.
/// </summary>
public sealed class EmbeddedPostgres : IAsyncDisposable
{
    private readonly string _root;
    private readonly ILogger _logger;
    private readonly bool _fsync;
    private readonly string? _alsoListenOn;
    private readonly string? _binaries;
    private bool _startedByUs;

    /// <summary>Where a server keeps its private cluster under its data directory (<c>Homeserver:DataDirectory</c>).</summary>
    public static string RootIn(string homeserverDataDirectory) => Path.Combine(homeserverDataDirectory, "postgres");

    /// <summary>The cluster's own data directory (<c>postmaster.pid</c>, <c>PG_VERSION</c>) under a root.</summary>
    public static string DataDirectoryUnder(string root) => Path.Combine(root, "pgdata");

    public string DataDirectory => DataDirectoryUnder(_root);
    public int Port { get; private set; }
    public string ConnectionString(string database = "postgres") =>
        $"Host=127.0.0.1;Port={Port};Username=postgres;Database={database};Pooling=true;Maximum Pool Size=64;Timeout=15;Command Timeout=60";

    /// <param name="root">Folder that holds the cluster (created if missing).</param>
    /// <param name="fsync">Off only for throwaway test clusters.</param>
    /// <param name="binaries">A folder holding initdb and pg_ctl; when null, PATH and /usr/lib/postgresql/*/bin are searched.</param>
    /// <param name="alsoListenOn">An address besides loopback to accept connections on, from the networks of this
    /// machine's own interfaces (tests that give processes network namespaces of their own).</param>
    public EmbeddedPostgres(string root, ILogger logger, bool fsync = true, string? binaries = null, string? alsoListenOn = null)
    {
        _alsoListenOn = alsoListenOn;
        _binaries = binaries;
        _root = Path.GetFullPath(root);
        _logger = logger;
        _fsync = fsync;
        Port = ResolvePort();
    }

    /// <summary>The port is fixed up front so the connection string is known before the server starts: the port of
    /// a server of ours still running on this folder, else the one used last time if free, else a free one.</summary>
    private int ResolvePort()
    {
        var opts = Path.Combine(DataDirectory, "postmaster.opts");
        if (File.Exists(Path.Combine(DataDirectory, "postmaster.pid")) && File.Exists(opts))
        {
            var m = System.Text.RegularExpressions.Regex.Match(File.ReadAllText(opts), "\"-p\" \"(\\d+)\"");
            if (m.Success && !LoopbackPorts.IsFree(int.Parse(m.Groups[1].Value))) return int.Parse(m.Groups[1].Value);
        }
        var portFile = Path.Combine(_root, "port");
        if (File.Exists(portFile) && int.TryParse(File.ReadAllText(portFile), out var saved) && LoopbackPorts.IsFree(saved))
            return saved;
        return LoopbackPorts.Free();
    }

    /// <summary>Thrown when no PostgreSQL binaries can be found; the message says what to install or configure.</summary>
    public sealed class NotAvailableException(string message) : Exception(message);

    public static bool IsRoot => RuntimeInformation.IsOSPlatform(OSPlatform.Linux) && geteuid() == 0;

    [DllImport("libc", SetLastError = true)]
    private static extern uint geteuid();

    public async Task StartAsync(CancellationToken ct = default)
    {
        var initdb = FindBinary("initdb", _binaries);
        var pgCtl = FindBinary("pg_ctl", _binaries);
        if (initdb is null || pgCtl is null)
            throw new NotAvailableException(
                (_binaries is null
                    ? "PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH or under /usr/lib/postgresql/*/bin. "
                    : $"PostgreSQL server binaries (initdb, pg_ctl) were not found in Homeserver:PostgresBinaries ({_binaries}). ") +
                "Install them (Debian: apt-get install postgresql) or set Homeserver:Postgres to a connection string.");

        Directory.CreateDirectory(_root);
        if (IsRoot && !OperatingSystem.IsWindows())
        {
            MakeReachableByPostgres(_root);
            await RunAsync("chown", ["-R", "postgres:postgres", _root], asPostgres: false, ct);
        }

        var portFile = Path.Combine(_root, "port");
        if (!File.Exists(Path.Combine(DataDirectory, "PG_VERSION")))
        {
            _logger.LogInformation("Creating a private PostgreSQL cluster in {Dir}", DataDirectory);
            await RunAsync(initdb, ["-D", DataDirectory, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale"], IsRoot, ct);
        }

        await File.WriteAllTextAsync(portFile, Port.ToString(), ct);

        var status = await RunAsync(pgCtl, ["-D", DataDirectory, "status"], IsRoot, ct, throwOnError: false);
        if (status.ExitCode == 0)
        {
            // A server from an earlier run of ours still owns the folder (its port was picked up in ResolvePort): that
            // run died without stopping it. This run adopts it, and stops it at shutdown as if it had started it.
            _startedByUs = true;
            _logger.LogInformation("Reusing the private PostgreSQL already running on port {Port}", Port);
            return;
        }

        if (_alsoListenOn is not null)
        {
            var hba = Path.Combine(DataDirectory, "pg_hba.conf");
            const string line = "host all all samenet trust";
            if (!(await File.ReadAllTextAsync(hba, ct)).Contains(line)) await File.AppendAllTextAsync(hba, line + "\n", ct);
        }
        var listen = _alsoListenOn is null ? "127.0.0.1" : $"127.0.0.1,{_alsoListenOn}";
        // No parallel query: the server's queries are many short ones side by side, and a worker per query costs more
        // CPU than it saves. The state read of a full-state sync (23,000 events a query, four side by side) took 43 ms
        // of one backend without a worker, 53-61 ms with one and twice the CPU (docs/benchmarks.md, twelfth session).
        var options = $"-p {Port} -c listen_addresses={listen} -c unix_socket_directories= -c max_connections=300 " +
                      $"-c shared_buffers=256MB -c fsync={(_fsync ? "on" : "off")} -c synchronous_commit={(_fsync ? "on" : "off")} " +
                      $"-c full_page_writes={(_fsync ? "on" : "off")} -c max_parallel_workers_per_gather=0";
        var log = Path.Combine(_root, "postgres.log");
        await RunAsync(pgCtl, ["-D", DataDirectory, "-o", options, "-l", log, "-w", "-t", "60", "start"], IsRoot, ct);
        _startedByUs = true;
        _logger.LogInformation("Private PostgreSQL started on 127.0.0.1:{Port}", Port);
    }

    /// <param name="immediate">Stop as a crash would: every backend quits at once, and the next start recovers from
    /// the write-ahead log (for fault tests). Otherwise a fast shutdown: clients are disconnected cleanly.</param>
    public async Task StopAsync(bool immediate = false)
    {
        if (!_startedByUs) return;
        _startedByUs = false;
        var pgCtl = FindBinary("pg_ctl", _binaries);
        if (pgCtl is null) return;
        await RunAsync(pgCtl, ["-D", DataDirectory, "-m", immediate ? "immediate" : "fast", "-w", "stop"], IsRoot, CancellationToken.None, throwOnError: false);
        _logger.LogInformation("Private PostgreSQL stopped");
    }

    public ValueTask DisposeAsync() => new(StopAsync());



    public static string? FindBinary(string name, string? folder = null)
    {
        if (folder is not null)
        {
            var only = Path.Combine(folder, name);
            return File.Exists(only) ? only : null;
        }
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, name);
            if (File.Exists(candidate)) return candidate;
        }
        const string debian = "/usr/lib/postgresql";
        if (Directory.Exists(debian))
        {
            foreach (var version in Directory.GetDirectories(debian).OrderByDescending(d => d, StringComparer.Ordinal))
            {
                var candidate = Path.Combine(version, "bin", name);
                if (File.Exists(candidate)) return candidate;
            }
        }
        return null;
    }

    /// <summary>The postgres user must be able to walk down to the folder: grant search (not read) where it can't.</summary>
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    private void MakeReachableByPostgres(string folder)
    {
        var dir = new DirectoryInfo(folder).Parent;
        while (dir is not null)
        {
            var mode = File.GetUnixFileMode(dir.FullName);
            if (!mode.HasFlag(UnixFileMode.OtherExecute))
            {
                _logger.LogWarning("Granting search permission on {Dir} so the postgres user can reach its data", dir.FullName);
                File.SetUnixFileMode(dir.FullName, mode | UnixFileMode.OtherExecute);
            }
            dir = dir.Parent;
        }
    }

    private async Task<(int ExitCode, string Output)> RunAsync(string file, string[] args, bool asPostgres, CancellationToken ct, bool throwOnError = true)
    {
        var psi = new ProcessStartInfo
        {
            FileName = asPostgres ? "runuser" : file,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = _root,
        };
        if (asPostgres)
        {
            foreach (var a in new[] { "-u", "postgres", "--", file }) psi.ArgumentList.Add(a);
        }
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"Could not start {file}");
        var stdout = p.StandardOutput.ReadToEndAsync(ct);
        var stderr = p.StandardError.ReadToEndAsync(ct);
        await p.WaitForExitAsync(ct);
        var output = (await stdout) + (await stderr);
        if (throwOnError && p.ExitCode != 0)
            throw new InvalidOperationException($"{Path.GetFileName(file)} {string.Join(' ', args)} failed ({p.ExitCode}): {output}");
        return (p.ExitCode, output);
    }
}

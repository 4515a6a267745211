using System.Diagnostics;
using System.Text;

namespace Homeserver.Tests.E2e;

/// <summary>
/// Runs the Node scenarios in <c>tests/e2e</c> (real matrix-js-sdk) against a running cluster. Finds the folder by
/// walking up from the test assembly to the repository root (the folder holding <c>Homeserver.sln</c>), finds
/// <c>node</c> and <c>npm</c> on PATH, and installs the locked packages with <c>npm ci</c> once per test run.
/// </summary>
public static class NodeScenario
{
    private static readonly SemaphoreSlim InstallGate = new(1, 1);
    private static bool _installed;

    public static string RepositoryRoot { get; } = FindRepositoryRoot();
    public static string ScenarioFolder => Path.Combine(RepositoryRoot, "tests", "e2e");

    /// <summary>Installs <c>node_modules</c> from the committed lock file when it is missing or older than the lock.</summary>
    public static async Task EnsureInstalledAsync()
    {
        // Test classes run in parallel and would otherwise start several `npm ci` into one folder at once.
        await InstallGate.WaitAsync();
        try
        {
            if (_installed) return;
            var folder = ScenarioFolder;
            var lockFile = Path.Combine(folder, "package-lock.json");
            // npm writes this copy of the lock once an install completes; git checkouts of a newer lock are newer.
            var installedLock = Path.Combine(folder, "node_modules", ".package-lock.json");
            if (!File.Exists(installedLock) || File.GetLastWriteTimeUtc(installedLock) < File.GetLastWriteTimeUtc(lockFile))
            {
                var result = await RunAsync(Tool("npm"), ["ci", "--no-audit", "--no-fund"], folder, TimeSpan.FromMinutes(5));
                if (result.ExitCode != 0)
                    throw new InvalidOperationException($"npm ci in {folder} failed (exit {result.ExitCode}):\n{result.Output}");
            }
            _installed = true;
        }
        finally { InstallGate.Release(); }
    }

    /// <summary>Runs <c>node &lt;script&gt; &lt;baseUrl&gt;...</c> in <c>tests/e2e</c> and returns its exit code and output.</summary>
    public static Task<ProcessResult> RunScriptAsync(string script, IEnumerable<string> baseUrls, TimeSpan timeout) =>
        RunAsync(Tool("node"), [script, .. baseUrls], ScenarioFolder, timeout);

    /// <summary>The full path of a tool on PATH (with Windows' <c>.cmd</c>/<c>.exe</c> forms), so a missing one fails clearly.</summary>
    public static string Tool(string name)
    {
        var extensions = OperatingSystem.IsWindows() ? new[] { ".cmd", ".exe", "" } : [""];
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        foreach (var ext in extensions)
        {
            var candidate = Path.Combine(dir, name + ext);
            if (File.Exists(candidate)) return candidate;
        }
        throw new InvalidOperationException($"'{name}' was not found on PATH; the end-to-end tests need Node.js 20+ with npm.");
    }

    /// <summary>Runs a program to its end (or kills it at <paramref name="timeout"/>), with its output.</summary>
    public static async Task<ProcessResult> RunAsync(string fileName, IReadOnlyList<string> arguments, string workingDirectory, TimeSpan timeout)
    {
        var info = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in arguments) info.ArgumentList.Add(a);
        info.Environment["NO_COLOR"] = "1";

        // One buffer for both streams keeps the script's step lines and any stderr in the order they were written.
        var output = new StringBuilder();
        using var process = new Process { StartInfo = info };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine("[stderr] " + e.Data); };
        var stopwatch = Stopwatch.StartNew();
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        using var cts = new CancellationTokenSource(timeout);
        var timedOut = false;
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            timedOut = true;
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            await process.WaitForExitAsync();
        }
        process.WaitForExit(); // drains the redirected streams

        string text;
        lock (output) text = output.ToString();
        var command = $"{Path.GetFileName(fileName)} {string.Join(' ', arguments)}";
        if (timedOut) text += $"\n[harness] `{command}` killed after {timeout.TotalSeconds:0} s\n";
        return new ProcessResult(timedOut ? -1 : process.ExitCode, text, stopwatch.Elapsed, command);
    }

    private static string FindRepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Homeserver.sln"))) return dir.FullName;
        }
        throw new InvalidOperationException($"No Homeserver.sln above {AppContext.BaseDirectory}; cannot find tests/e2e.");
    }
}

/// <param name="ExitCode">The process's exit code; -1 when it was killed for running past its timeout.</param>
/// <param name="Output">stdout and stderr interleaved as written (stderr lines prefixed).</param>
public sealed record ProcessResult(int ExitCode, string Output, TimeSpan Duration, string Command);

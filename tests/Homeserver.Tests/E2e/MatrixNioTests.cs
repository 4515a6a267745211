using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.E2e;

/// <summary>
/// matrix-nio 0.20 (Debian's <c>python3-matrix-nio</c>, which many bots and bridges run on) against two silos, on
/// the r0 paths it calls: register, device keys, a room, a message by /sync and by /messages, and an encrypted room
/// both sides decrypt (<c>tests/e2e/nio/nio_flow.py</c>). <c>.ci/run</c> installs the package when it is missing.
/// </summary>
public sealed class MatrixNioTests : IAsyncLifetime
{
    /// <summary>Debian's interpreter, where Debian's Python packages are (a python3 earlier on PATH may be another).</summary>
    private const string Python = "/usr/bin/python3";

    private HomeserverTestCluster _cluster = null!;
    private string _store = "";

    public async Task InitializeAsync()
    {
        _cluster = await HomeserverTestCluster.StartAsync(silos: 2);
        _store = Path.Combine(Path.GetTempPath(), $"homeserver-nio-{Guid.NewGuid():N}");
        Directory.CreateDirectory(_store);
    }

    public async Task DisposeAsync()
    {
        await _cluster.DisposeAsync();
        try { Directory.Delete(_store, true); } catch (IOException) { }
    }

    [Fact]
    public async Task Matrix_nio_registers_chats_reads_history_and_decrypts_on_r0_paths()
    {
        var check = await NodeScenario.RunAsync(Python, ["-c", "import nio, olm"], NodeScenario.RepositoryRoot, TimeSpan.FromSeconds(30));
        Assert.True(check.ExitCode == 0, $"matrix-nio is not installed for {Python} (Debian: apt-get install python3-matrix-nio):\n{check.Output}");
        var result = await NodeScenario.RunAsync(Python,
            [Path.Combine(NodeScenario.RepositoryRoot, "tests", "e2e", "nio", "nio_flow.py"), _cluster.Silos[0].BaseUrl, _cluster.Silos[1].BaseUrl, _store],
            NodeScenario.RepositoryRoot, TimeSpan.FromSeconds(180));
        Assert.True(result.ExitCode == 0, $"`{result.Command}` exited with {result.ExitCode} after {result.Duration.TotalSeconds:0.0} s:\n{result.Output}");
        Assert.Contains("alice decrypted bob's message", result.Output);
    }
}

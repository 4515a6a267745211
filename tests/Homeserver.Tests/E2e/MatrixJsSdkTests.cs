using Homeserver.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Homeserver.Tests.E2e;

/// <summary>A 2-silo cluster with front ends, and the Node packages the scenarios need.</summary>
public sealed class MatrixJsSdkCluster : IAsyncLifetime
{
    public HomeserverTestCluster Cluster { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var install = NodeScenario.EnsureInstalledAsync();
        Cluster = await HomeserverTestCluster.StartAsync(silos: 2);
        await install;
    }

    public async Task DisposeAsync()
    {
        if (Cluster is not null) await Cluster.DisposeAsync();
    }
}

/// <summary>
/// The real Matrix client library (matrix-js-sdk, run by Node) against two silos: each scenario is a script in
/// <c>tests/e2e</c> that prints one line per step and exits non-zero at the first step that fails.
/// </summary>
public sealed class MatrixJsSdkTests(MatrixJsSdkCluster fixture, ITestOutputHelper output) : IClassFixture<MatrixJsSdkCluster>
{
    private static readonly TimeSpan ScriptTimeout = TimeSpan.FromSeconds(120);

    [Fact]
    public Task Accounts_register_login_whoami_logout_across_silos() => RunScenarioAsync("scenario-accounts.mjs");

    [Fact]
    public Task Rooms_invite_join_messages_state_history_and_leave_across_silos() => RunScenarioAsync("scenario-rooms.mjs");

    [Fact]
    public Task Typing_receipts_profile_account_data_to_device_and_directory_across_silos() => RunScenarioAsync("scenario-ephemeral.mjs");

    [Fact]
    public Task Encrypted_room_both_sides_decrypt_across_silos() => RunScenarioAsync("scenario-encrypted.mjs");

    [Fact]
    public Task Media_upload_download_and_threads_across_silos() => RunScenarioAsync("scenario-media-threads.mjs");

    private async Task RunScenarioAsync(string script)
    {
        var urls = fixture.Cluster.Silos.Select(s => s.BaseUrl).ToArray();
        var result = await NodeScenario.RunScriptAsync(script, urls, ScriptTimeout);
        // On failure the output is in the assertion message; printing it to the test output as well would show it twice.
        Assert.True(result.ExitCode == 0,
            $"`{result.Command}` exited with {result.ExitCode} after {result.Duration.TotalSeconds:0.0} s:\n{result.Output}");
        output.WriteLine($"$ {result.Command}  ({result.Duration.TotalSeconds:0.0} s)\n{result.Output}");
    }
}

using Homeserver.Streams;

namespace Homeserver.Tests.Infrastructure;

/// <summary>
/// A class or collection fixture: one 2-silo <see cref="HomeserverTestCluster"/> shared by the tests that use it.
/// Derive to add helpers or settings.
/// </summary>
public class TwoSiloCluster : IAsyncLifetime
{
    public HomeserverTestCluster Cluster { get; private set; } = null!;
    public TestSilo A => Cluster.Silos[0];
    public TestSilo B => Cluster.Silos[1];

    /// <summary>Extra configuration for every silo (null: defaults).</summary>
    protected virtual IDictionary<string, string?>? Settings => null;

    public async Task InitializeAsync() => Cluster = await HomeserverTestCluster.StartAsync(silos: 2, Settings);

    /// <summary>Registers a user (on silo A unless told otherwise).</summary>
    public Task<MatrixTestClient> UserAsync(string prefix, TestSilo? silo = null) =>
        MatrixTestClient.RegisterAsync(silo ?? A, MatrixTestClient.UniqueLocalpart(prefix));

    /// <summary>Waits until silo B has applied everything silo A had applied (a client moving from A to B would carry
    /// a sync token for this).</summary>
    public async Task SettleAsync()
    {
        var target = A.Get<StreamNotifier>().Current;
        Assert.True(await B.Get<StreamNotifier>().WaitForTokenAsync(target, TimeSpan.FromSeconds(10)), "silo B did not catch up");
    }

    public async Task DisposeAsync()
    {
        if (Cluster is not null) await Cluster.DisposeAsync();
    }
}

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

    public async Task DisposeAsync()
    {
        if (Cluster is not null) await Cluster.DisposeAsync();
    }
}

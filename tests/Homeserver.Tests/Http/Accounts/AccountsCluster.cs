using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.Accounts;

/// <summary>One 2-silo cluster with default settings, shared by the account test classes of the collection.</summary>
public sealed class AccountsCluster : IAsyncLifetime
{
    public HomeserverTestCluster Cluster { get; private set; } = null!;
    public TestSilo A => Cluster.Silos[0];
    public TestSilo B => Cluster.Silos[1];

    public async Task InitializeAsync() => Cluster = await HomeserverTestCluster.StartAsync(silos: 2);

    public async Task DisposeAsync() => await Cluster.DisposeAsync();
}

[CollectionDefinition(Name)]
public sealed class AccountsCollection : ICollectionFixture<AccountsCluster>
{
    public const string Name = "accounts";
}

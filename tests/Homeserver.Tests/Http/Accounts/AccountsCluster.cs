using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.Accounts;

/// <summary>One 2-silo cluster with default settings, shared by the account test classes of the collection.</summary>
public sealed class AccountsCluster : TwoSiloCluster
{}

[CollectionDefinition(Name)]
public sealed class AccountsCollection : ICollectionFixture<AccountsCluster>
{
    public const string Name = "accounts";
}

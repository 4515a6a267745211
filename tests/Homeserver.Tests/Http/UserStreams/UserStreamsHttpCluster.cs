using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.UserStreams;

/// <summary>One 2-silo cluster shared by the user-stream HTTP test classes; users register on silo 0.</summary>
public sealed class UserStreamsHttpCluster : TwoSiloCluster;

[CollectionDefinition(Name)]
public sealed class UserStreamsHttpCollection : ICollectionFixture<UserStreamsHttpCluster>
{
    public const string Name = "user-streams-http";
}

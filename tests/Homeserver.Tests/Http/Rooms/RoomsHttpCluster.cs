using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.Rooms;

/// <summary>One 2-silo cluster shared by the room HTTP test classes; users register on silo 0.</summary>
public sealed class RoomsHttpCluster : TwoSiloCluster;

[CollectionDefinition(Name)]
public sealed class RoomsHttpCollection : ICollectionFixture<RoomsHttpCluster>
{
    public const string Name = "rooms-http";
}

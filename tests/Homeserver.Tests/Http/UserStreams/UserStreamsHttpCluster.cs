using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.UserStreams;

/// <summary>One 2-silo cluster shared by the user-stream HTTP test classes; users register on silo 0.</summary>
public sealed class UserStreamsHttpCluster : TwoSiloCluster
{
    /// <summary>Alice's public room with Bob joined.</summary>
    public async Task<(MatrixTestClient Alice, MatrixTestClient Bob, string RoomId)> PublicRoomWithTwoAsync()
    {
        var alice = await UserAsync("alice");
        var bob = await UserAsync("bob");
        var roomId = await alice.CreateRoomAsync(new System.Text.Json.Nodes.JsonObject { ["preset"] = "public_chat" });
        (await bob.PostAsync($"{MatrixPaths.Room(roomId)}/join")).EnsureSuccess();
        return (alice, bob, roomId);
    }
}

[CollectionDefinition(Name)]
public sealed class UserStreamsHttpCollection : ICollectionFixture<UserStreamsHttpCluster>
{
    public const string Name = "user-streams-http";
}

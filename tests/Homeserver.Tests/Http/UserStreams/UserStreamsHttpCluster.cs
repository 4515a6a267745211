using System.Text.Json.Nodes;
using Homeserver.Streams;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.UserStreams;

/// <summary>One 2-silo cluster shared by the user-stream HTTP test classes; users register on silo 0.</summary>
public sealed class UserStreamsHttpCluster : IAsyncLifetime
{
    public HomeserverTestCluster Cluster { get; private set; } = null!;
    public TestSilo A => Cluster.Silos[0];
    public TestSilo B => Cluster.Silos[1];

    public async Task InitializeAsync() => Cluster = await HomeserverTestCluster.StartAsync(silos: 2);

    public async Task DisposeAsync() => await Cluster.DisposeAsync();

    public Task<MatrixTestClient> UserAsync(string prefix) => MatrixTestClient.RegisterAsync(A, MatrixTestClient.UniqueLocalpart(prefix));

    /// <summary>Waits until silo B has applied everything silo A had applied.</summary>
    public async Task SettleAsync()
    {
        var target = A.Get<StreamNotifier>().Current;
        Assert.True(await B.Get<StreamNotifier>().WaitForTokenAsync(target, TimeSpan.FromSeconds(10)), "silo B did not catch up");
    }
}

[CollectionDefinition(Name)]
public sealed class UserStreamsHttpCollection : ICollectionFixture<UserStreamsHttpCluster>
{
    public const string Name = "user-streams-http";
}

internal static class UserStreamPaths
{
    public const string V3 = "/_matrix/client/v3";
    public static string E(string segment) => MatrixTestClient.Escape(segment);
    public static string Room(string roomId) => $"{V3}/rooms/{E(roomId)}";

    public static async Task<string> CreateRoomAsync(this MatrixTestClient client, object? body = null) =>
        (await client.PostAsync($"{V3}/createRoom", body ?? new JsonObject())).EnsureSuccess()["room_id"]!.GetValue<string>();

    public static async Task<string> SendTextAsync(this MatrixTestClient client, string roomId, string body) =>
        (await client.PutAsync($"{Room(roomId)}/send/m.room.message/{Guid.NewGuid():N}",
            new JsonObject { ["msgtype"] = "m.text", ["body"] = body })).EnsureSuccess()["event_id"]!.GetValue<string>();

    public static void AssertError(MatrixResponse r, int status, string errcode) =>
        Assert.True(r.StatusCode == status && r.ErrCode == errcode, $"expected {status} {errcode}, got {r.StatusCode}: {r.Text}");
}

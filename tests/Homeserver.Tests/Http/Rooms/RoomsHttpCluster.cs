using System.Text.Json.Nodes;
using Homeserver.Streams;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.Rooms;

/// <summary>One 2-silo cluster shared by the room HTTP test classes; users register on silo 0.</summary>
public sealed class RoomsHttpCluster : TwoSiloCluster
{
    public Task<MatrixTestClient> UserAsync(string prefix) => MatrixTestClient.RegisterAsync(A, MatrixTestClient.UniqueLocalpart(prefix));

    /// <summary>Waits until silo B has applied every events-stream write silo A had applied (a client moving between
    /// silos would carry a sync token for this).</summary>
    public async Task SettleAsync()
    {
        var target = StreamToken.Zero.With(StreamNames.Events, A.Get<StreamNotifier>().Current[StreamNames.Events]);
        Assert.True(await B.Get<StreamNotifier>().WaitForTokenAsync(target, TimeSpan.FromSeconds(10)), "silo B did not catch up");
    }
}

[CollectionDefinition(Name)]
public sealed class RoomsHttpCollection : ICollectionFixture<RoomsHttpCluster>
{
    public const string Name = "rooms-http";
}

internal static class RoomPaths
{
    public const string V3 = "/_matrix/client/v3";
    public static string Room(string roomId) => $"{V3}/rooms/{MatrixTestClient.Escape(roomId)}";
    public static string Event(string roomId, string eventId) => $"{Room(roomId)}/event/{MatrixTestClient.Escape(eventId)}";

    public static async Task<string> CreateRoomAsync(this MatrixTestClient client, object? body = null) =>
        (await client.PostAsync($"{V3}/createRoom", body ?? new JsonObject())).EnsureSuccess()["room_id"]!.GetValue<string>();

    public static async Task<string> SendTextAsync(this MatrixTestClient client, string roomId, string body, string? txn = null) =>
        (await client.PutAsync($"{Room(roomId)}/send/m.room.message/{txn ?? Guid.NewGuid().ToString("N")}",
            new JsonObject { ["msgtype"] = "m.text", ["body"] = body })).EnsureSuccess()["event_id"]!.GetValue<string>();
}

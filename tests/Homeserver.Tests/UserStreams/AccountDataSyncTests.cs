using Homeserver.Tests.Http.UserStreams;
using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.UserStreams;

[Collection(UserStreamsHttpCollection.Name)]
public sealed class AccountDataSyncTests(UserStreamsHttpCluster fx)
{
    [Fact]
    public async Task Account_data_set_by_one_device_on_one_silo_wakes_the_users_other_device_on_the_other_silo()
    {
        var alice = await fx.UserAsync("alice");
        var second = await MatrixTestClient.LoginAsync(fx.B, alice.UserId);
        var roomId = await alice.CreateRoomAsync();
        var user = $"{V3}/user/{E(alice.UserId)}";
        (await alice.PutAsync($"{user}/account_data/org.example.before", new JsonObject { ["n"] = 1 })).EnsureSuccess();
        await fx.SettleAsync();

        var initial = await SyncProbe.SyncAsync(fx.B, second, null, TimeSpan.Zero);
        Assert.Contains(initial.AccountData, e => e!["type"]!.GetValue<string>() == "org.example.before");

        var poll = SyncProbe.SyncAsync(fx.B, second, initial.NextBatch, TimeSpan.FromSeconds(20));
        await Task.Delay(100);
        (await alice.PutAsync($"{user}/rooms/{E(roomId)}/tags/m.favourite", new JsonObject())).EnsureSuccess();
        var woken = await poll;
        Assert.True(woken.Woken);
        var roomData = woken.RoomEvents(roomId, "account_data");
        Assert.Equal("m.tag", Assert.Single(roomData)!["type"]!.GetValue<string>());
        Assert.True(roomData[0]!["content"]!["tags"]!.AsObject().ContainsKey("m.favourite"));
        Assert.DoesNotContain(woken.AccountData, e => e!["type"]!.GetValue<string>() == "org.example.before");

        (await alice.PutAsync($"{user}/account_data/org.example.after", new JsonObject { ["n"] = 2 })).EnsureSuccess();
        var next = await SyncProbe.SyncAsync(fx.B, second, woken.NextBatch, TimeSpan.FromSeconds(20));
        var global = Assert.Single(next.AccountData, e => e!["type"]!.GetValue<string>() != "m.push_rules");
        Assert.Equal(2, global!["content"]!["n"]!.GetValue<int>());
        Assert.Null(next.Room(roomId));
    }
}

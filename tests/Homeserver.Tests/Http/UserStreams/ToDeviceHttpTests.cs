using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.UserStreams;

/// <summary>To-device messages: sent on silo A, long-polled on silo B, queued per device until a sync moves past them.</summary>
[Collection(UserStreamsHttpCollection.Name)]
public sealed class ToDeviceHttpTests(UserStreamsHttpCluster fx)
{
    private static JsonObject Messages(string userId, string deviceId, JsonObject content) =>
        new() { ["messages"] = new JsonObject { [userId] = new JsonObject { [deviceId] = content } } };

    [Fact]
    public async Task A_message_reaches_the_named_device_across_silos_and_stays_until_a_sync_moves_past_it()
    {
        var alice = await fx.UserAsync("alice");
        var bob1 = await fx.UserAsync("bob");
        var bob2 = await MatrixTestClient.LoginAsync(fx.B, bob1.UserId);
        var s0 = (await bob2.SyncAsync()).NextBatch();
        var other0 = (await bob1.SyncAsync()).NextBatch();

        var poll = bob2.SyncAsync(s0, timeoutMs: 20_000);
        await Task.Delay(200);
        Assert.False(poll.IsCompleted);
        (await alice.PutAsync($"{V3}/sendToDevice/m.test/t1", Messages(bob2.UserId, bob2.DeviceId, new JsonObject { ["n"] = 1 }))).EnsureSuccess();
        var first = await poll;
        var message = Assert.Single(first.Events("to_device"))!;
        Assert.Equal(alice.UserId, message["sender"]!.GetValue<string>());
        Assert.Equal("m.test", message["type"]!.GetValue<string>());
        Assert.Equal(1, message["content"]!["n"]!.GetValue<int>());

        // The response was lost: the client retries with the old token and still gets it.
        Assert.Single((await bob2.SyncAsync(s0)).Events("to_device"));
        // Moving past it acknowledges it: never again.
        var next = await bob2.SyncAsync(first.NextBatch());
        Assert.Empty(next.Events("to_device"));
        Assert.Empty((await bob2.SyncAsync(s0)).Events("to_device"));
        // The other device got nothing.
        Assert.Empty((await bob1.SyncAsync(other0)).Events("to_device"));
    }

    [Fact]
    public async Task Star_reaches_every_device_and_a_repeated_transaction_is_sent_once()
    {
        var alice = await fx.UserAsync("alice");
        var bob1 = await fx.UserAsync("bob");
        var bob2 = await MatrixTestClient.LoginAsync(fx.B, bob1.UserId);
        var since1 = (await bob1.SyncAsync()).NextBatch();
        var since2 = (await bob2.SyncAsync()).NextBatch();

        var body = Messages(bob1.UserId, "*", new JsonObject { ["k"] = "v" });
        (await alice.PutAsync($"{V3}/sendToDevice/m.test/same", body)).EnsureSuccess();
        (await alice.On(fx.B).PutAsync($"{V3}/sendToDevice/m.test/same", body)).EnsureSuccess();
        var aliceElsewhere = await MatrixTestClient.LoginAsync(fx.A, alice.UserId);
        (await aliceElsewhere.PutAsync($"{V3}/sendToDevice/m.test/same", Messages(bob1.UserId, bob1.DeviceId, new JsonObject { ["k"] = "w" }))).EnsureSuccess();
        (await alice.PutAsync($"{V3}/sendToDevice/m.test/unknown", Messages(bob1.UserId, "NOSUCHDEVICE", new JsonObject()))).EnsureSuccess();
        await fx.SettleAsync();

        var toBob1 = (await bob1.SyncAsync(since1)).Events("to_device");
        Assert.Equal(["v", "w"], toBob1.Select(e => e!["content"]!["k"]!.GetValue<string>()).ToArray());
        var toBob2 = (await bob2.SyncAsync(since2)).Events("to_device");
        Assert.Equal("v", Assert.Single(toBob2)!["content"]!["k"]!.GetValue<string>());
    }

    [Fact]
    public async Task SendToDevice_errors()
    {
        var alice = await fx.UserAsync("alice");
        AssertError(await alice.PutAsync($"{V3}/sendToDevice/m.test/e1", new JsonObject()), 400, "M_BAD_JSON");
        AssertError(await alice.PutAsync($"{V3}/sendToDevice/m.test/e2", new JsonObject { ["messages"] = new JsonObject { [alice.UserId] = new JsonObject { ["D"] = 5 } } }), 400, "M_BAD_JSON");
        AssertError(await alice.PutAsync($"{V3}/sendToDevice/m.test/e3", Messages("not-a-user", "D", new JsonObject())), 400, "M_INVALID_PARAM");
        AssertError(await alice.PutAsync($"{V3}/sendToDevice/m.test/e4", "{"), 400, "M_NOT_JSON");
        Assert.Equal(401, (await fx.A.Http.PutJsonAsync($"{V3}/sendToDevice/m.test/e5", Messages(alice.UserId, "*", new JsonObject()))).StatusCode);
    }
}

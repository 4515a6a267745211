using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Http.Keys.Api;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.Keys;

/// <summary>An incremental sync names the device lists of whoever newly joined one of the user's rooms: from the join
/// events the sync read (no device list moved), or from the database when a leave is among them.</summary>
[Collection(KeysCollection.Name)]
public sealed class JoinDeviceListTests(KeysCluster fx)
{
    [Fact]
    public async Task A_long_poll_woken_by_a_join_names_the_joiner_and_a_join_then_leave_names_them_left()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        var carol = await fx.UserAsync("carol");
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        var onB = alice.On(fx.B);
        var since = await onB.SyncTokenAsync();

        var poll = onB.GetAsync($"{V3}/sync?timeout=20000&since={since}");
        (await bob.PostAsync($"{V3}/join/{E(roomId)}")).EnsureSuccess();
        var sync = (await poll).EnsureSuccess();
        Assert.Equal(new[] { bob.UserId }, Strings(sync["device_lists"]["changed"]));
        Assert.Empty(Strings(sync["device_lists"]["left"]));

        // Carol joins and leaves within one window: she shares nothing with alice any more.
        since = sync["next_batch"].GetValue<string>();
        (await carol.PostAsync($"{V3}/join/{E(roomId)}")).EnsureSuccess();
        (await carol.PostAsync($"{Room(roomId)}/leave")).EnsureSuccess();
        await fx.SettleAsync();
        sync = (await onB.GetAsync($"{V3}/sync?timeout=20000&since={since}")).EnsureSuccess();
        Assert.DoesNotContain(carol.UserId, Strings(sync["device_lists"]["changed"]));
        Assert.Contains(carol.UserId, Strings(sync["device_lists"]["left"]));

        // A message alone names nobody.
        since = sync["next_batch"].GetValue<string>();
        (await bob.PutAsync($"{Room(roomId)}/send/m.room.message/t1", new JsonObject { ["msgtype"] = "m.text", ["body"] = "hi" })).EnsureSuccess();
        await fx.SettleAsync();
        sync = (await onB.GetAsync($"{V3}/sync?timeout=20000&since={since}")).EnsureSuccess();
        Assert.Empty(Strings(sync["device_lists"]["changed"]));
    }
}

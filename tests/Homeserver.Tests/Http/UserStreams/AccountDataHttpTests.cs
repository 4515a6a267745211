using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.UserStreams;

[Collection(UserStreamsHttpCollection.Name)]
public sealed class AccountDataHttpTests(UserStreamsHttpCluster fx)
{
    private static string User(MatrixTestClient c) => $"{V3}/user/{E(c.UserId)}";

    [Fact]
    public async Task Global_and_room_account_data_round_trip_across_silos()
    {
        var alice = await fx.UserAsync("alice");
        var roomId = "!someroom:localhost";
        (await alice.PutAsync($"{User(alice)}/account_data/org.example.conf", new JsonObject { ["theme"] = "dark" })).EnsureSuccess();
        (await alice.PutAsync($"{User(alice)}/rooms/{E(roomId)}/account_data/org.example.conf", new JsonObject { ["mute"] = true })).EnsureSuccess();
        // Same silo at once (read-your-writes), then the other silo.
        Assert.Equal("dark", (await alice.GetAsync($"{User(alice)}/account_data/org.example.conf")).EnsureSuccess()["theme"].GetValue<string>());
        (await alice.PutAsync($"{User(alice)}/account_data/org.example.conf", new JsonObject { ["theme"] = "light" })).EnsureSuccess();
        await fx.SettleAsync();
        var onB = alice.On(fx.B);
        Assert.Equal("light", (await onB.GetAsync($"{User(alice)}/account_data/org.example.conf")).EnsureSuccess()["theme"].GetValue<string>());
        Assert.True((await onB.GetAsync($"{User(alice)}/rooms/{E(roomId)}/account_data/org.example.conf")).EnsureSuccess()["mute"].GetValue<bool>());
        AssertError(await onB.GetAsync($"{User(alice)}/rooms/{E("!other:localhost")}/account_data/org.example.conf"), 404, "M_NOT_FOUND");
        AssertError(await onB.GetAsync($"{User(alice)}/account_data/org.example.missing"), 404, "M_NOT_FOUND");
    }

    [Fact]
    public async Task Account_data_errors()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        AssertError(await bob.PutAsync($"{User(alice)}/account_data/x.y", new JsonObject()), 403, "M_FORBIDDEN");
        AssertError(await bob.GetAsync($"{User(alice)}/account_data/x.y"), 403, "M_FORBIDDEN");
        AssertError(await bob.GetAsync($"{User(alice)}/rooms/{E("!r:localhost")}/tags"), 403, "M_FORBIDDEN");
        AssertError(await alice.PutAsync($"{User(alice)}/account_data/m.push_rules", new JsonObject()), 405, "M_BAD_JSON");
        AssertError(await alice.PutAsync($"{User(alice)}/account_data/m.fully_read", new JsonObject()), 405, "M_BAD_JSON");
        AssertError(await alice.PutAsync($"{User(alice)}/rooms/{E("!r:localhost")}/account_data/m.fully_read", new JsonObject { ["event_id"] = "$x" }), 405, "M_BAD_JSON");
        AssertError(await alice.PutAsync($"{User(alice)}/account_data/x.y", "[1]"), 400, "M_BAD_JSON");
        AssertError(await alice.PutAsync($"{User(alice)}/account_data/x.y", "nope"), 400, "M_NOT_JSON");
        AssertError(await alice.PutAsync($"{User(alice)}/rooms/notaroom/account_data/x.y", new JsonObject()), 400, "M_INVALID_PARAM");
        AssertError(await alice.PutAsync($"{User(alice)}/rooms/{E("!r:localhost")}/tags/u.x", new { order = "first" }), 400, "M_BAD_JSON");
        AssertError(await alice.PutAsync($"{User(alice)}/rooms/{E("!r:localhost")}/tags/{new string('t', 256)}", new JsonObject()), 400, "M_INVALID_PARAM");
        Assert.Equal(401, (await fx.A.Http.GetJsonAsync($"{User(alice)}/account_data/x.y")).StatusCode);
    }

    [Fact]
    public async Task Tags_are_added_replaced_and_removed_as_the_rooms_m_tag()
    {
        var alice = await fx.UserAsync("alice");
        var tags = $"{User(alice)}/rooms/{E("!tagged:localhost")}/tags";
        Assert.Equal("{}", (await alice.GetAsync(tags)).EnsureSuccess()["tags"].ToJsonString());
        (await alice.PutAsync($"{tags}/m.favourite", new { order = 0.5 })).EnsureSuccess();
        (await alice.On(fx.B).PutAsync($"{tags}/u.work", new JsonObject())).EnsureSuccess();
        (await alice.PutAsync($"{tags}/m.favourite", new { order = 0.25 })).EnsureSuccess();
        await fx.SettleAsync();
        var got = (await alice.On(fx.B).GetAsync(tags)).EnsureSuccess()["tags"].AsObject();
        Assert.Equal(0.25, got["m.favourite"]!["order"]!.GetValue<double>());
        Assert.True(got.ContainsKey("u.work"));
        var mTag = (await alice.GetAsync($"{User(alice)}/rooms/{E("!tagged:localhost")}/account_data/m.tag")).EnsureSuccess();
        Assert.Equal(2, mTag["tags"].AsObject().Count);

        (await alice.DeleteAsync($"{tags}/u.work")).EnsureSuccess();
        (await alice.DeleteAsync($"{tags}/u.never")).EnsureSuccess();
        Assert.Equal(["m.favourite"], (await alice.GetAsync(tags)).EnsureSuccess()["tags"].AsObject().Select(kv => kv.Key).ToArray());
    }
}

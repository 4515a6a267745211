using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.UserStreams;

/// <summary>Two silos whose push delivery may reach a gateway on loopback (by default it may not).</summary>
public sealed class PushHttpCluster : TwoSiloCluster
{
    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?>
    {
        ["Homeserver:Push:AllowedNetworks:0"] = "127.0.0.0/8",
        ["Homeserver:Push:GatewayTimeout"] = "00:00:05",
    };
}

/// <summary>POST /pushers/set, GET /pushers, and delivery to a real push gateway on loopback.</summary>
public sealed class PusherHttpTests(PushHttpCluster fx) : IClassFixture<PushHttpCluster>, IAsyncLifetime
{
    private TestPushGateway _gateway = null!;

    public async Task InitializeAsync() => _gateway = await TestPushGateway.StartAsync();

    public async Task DisposeAsync() => await _gateway.DisposeAsync();

    private JsonObject Pusher(string pushKey, string? url = null, string appId = "org.example.app", JsonObject? data = null)
    {
        data ??= new JsonObject();
        data["url"] = url ?? _gateway.Url;
        return new JsonObject
        {
            ["kind"] = "http", ["app_id"] = appId, ["pushkey"] = pushKey, ["app_display_name"] = "Example",
            ["device_display_name"] = "Phone", ["profile_tag"] = "tag", ["lang"] = "en", ["data"] = data,
        };
    }

    private static JsonArray Pushers(MatrixResponse r) => r.EnsureSuccess()["pushers"]!.AsArray();

    private static Func<JsonObject, bool> MessageFor(string pushKey, string? body = null) => n =>
        n["notification"]!["type"]?.GetValue<string>() == "m.room.message"
        && n["notification"]!["devices"]![0]!["pushkey"]!.GetValue<string>() == pushKey
        && (body is null || n["notification"]!["content"]?["body"]?.GetValue<string>() == body);

    [Fact]
    public async Task Pushers_are_set_listed_replaced_and_deleted_and_bad_settings_refused()
    {
        var alice = await fx.UserAsync("alice");
        Assert.Empty(Pushers(await alice.GetAsync($"{V3}/pushers")));
        (await alice.PostAsync($"{V3}/pushers/set", Pusher("key-1", data: new JsonObject { ["format"] = "event_id_only", ["custom"] = 7 }))).EnsureSuccess();
        var listed = Assert.Single(Pushers(await alice.On(fx.B).GetAsync($"{V3}/pushers")))!;
        Assert.Equal("http", listed["kind"]!.GetValue<string>());
        Assert.Equal("key-1", listed["pushkey"]!.GetValue<string>());
        Assert.Equal("tag", listed["profile_tag"]!.GetValue<string>());
        Assert.Equal(7, listed["data"]!["custom"]!.GetValue<int>());
        Assert.Equal(_gateway.Url, listed["data"]!["url"]!.GetValue<string>());

        var replaced = Pusher("key-1");
        replaced["device_display_name"] = "Tablet";
        (await alice.PostAsync($"{V3}/pushers/set", replaced)).EnsureSuccess();
        Assert.Equal("Tablet", Assert.Single(Pushers(await alice.GetAsync($"{V3}/pushers")))!["device_display_name"]!.GetValue<string>());

        // Without append, the same app id and pushkey of another user go: the device changed hands.
        var bob = await fx.UserAsync("bob");
        (await bob.PostAsync($"{V3}/pushers/set", Pusher("key-1"))).EnsureSuccess();
        Assert.Empty(Pushers(await alice.GetAsync($"{V3}/pushers")));
        var appended = Pusher("key-1");
        appended["append"] = true;
        (await alice.PostAsync($"{V3}/pushers/set", appended)).EnsureSuccess();
        Assert.Single(Pushers(await alice.GetAsync($"{V3}/pushers")));
        Assert.Single(Pushers(await bob.GetAsync($"{V3}/pushers")));

        (await alice.PostAsync($"{V3}/pushers/set", new JsonObject { ["kind"] = null, ["app_id"] = "org.example.app", ["pushkey"] = "key-1" })).EnsureSuccess();
        Assert.Empty(Pushers(await alice.GetAsync($"{V3}/pushers")));

        async Task Refused(JsonObject body, string errcode)
        {
            var r = await alice.PostAsync($"{V3}/pushers/set", body);
            Assert.Equal(400, r.StatusCode);
            Assert.Equal(errcode, r.ErrCode);
        }
        var noKind = Pusher("k");
        noKind.Remove("kind");
        await Refused(noKind, "M_MISSING_PARAM");
        var noLang = Pusher("k");
        noLang.Remove("lang");
        await Refused(noLang, "M_MISSING_PARAM");
        var email = Pusher("k");
        email["kind"] = "email";
        await Refused(email, "M_INVALID_PARAM");
        await Refused(Pusher("k", url: "https://push.example.org/elsewhere"), "M_INVALID_PARAM");
        await Refused(Pusher("k", url: "not a url"), "M_INVALID_PARAM");
        await Refused(Pusher("k", appId: new string('a', 65)), "M_INVALID_PARAM");
        var noUrl = Pusher("k");
        noUrl["data"] = new JsonObject();
        await Refused(noUrl, "M_INVALID_PARAM");
        Assert.Equal(401, (await fx.A.Http.GetJsonAsync($"{V3}/pushers")).StatusCode);
    }

    [Fact]
    public async Task A_message_is_pushed_with_counts_devices_and_the_room_name_and_a_receipt_sends_the_badge_down()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        var roomId = await bob.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat", ["name"] = "Lunch" });
        await alice.JoinAsync(roomId);
        (await alice.PostAsync($"{V3}/pushers/set", Pusher("alice-phone", data: new JsonObject { ["extra"] = "kept" }))).EnsureSuccess();

        await alice.SendTextAsync(roomId, "my own message is not pushed to me");
        var eventId = await bob.On(fx.B).SendTextAsync(roomId, "pizza?");
        var pushed = (await _gateway.NextAsync(MessageFor("alice-phone")))["notification"]!;
        Assert.Equal(eventId, pushed["event_id"]!.GetValue<string>());
        Assert.Equal(eventId, pushed["id"]!.GetValue<string>());
        Assert.Equal(roomId, pushed["room_id"]!.GetValue<string>());
        Assert.Equal(bob.UserId, pushed["sender"]!.GetValue<string>());
        Assert.Equal("pizza?", pushed["content"]!["body"]!.GetValue<string>());
        Assert.Equal("Lunch", pushed["room_name"]!.GetValue<string>());
        Assert.Equal(1, pushed["counts"]!["unread"]!.GetValue<long>());
        var device = pushed["devices"]![0]!;
        Assert.Equal("org.example.app", device["app_id"]!.GetValue<string>());
        Assert.True(device["pushkey_ts"]!.GetValue<long>() > 0);
        Assert.Equal("kept", device["data"]!["extra"]!.GetValue<string>());
        Assert.Null(device["data"]!["url"]);
        Assert.Equal("default", device["tweaks"]!["sound"]!.GetValue<string>()); // two members: the one-to-one rule

        (await alice.PostAsync($"{Room(roomId)}/receipt/m.read/{E(eventId)}")).EnsureSuccess();
        var badge = (await _gateway.NextAsync(n => n["notification"]!["type"] is null))["notification"]!;
        Assert.Equal(0, badge["counts"]!["unread"]!.GetValue<long>());
        Assert.Equal("", badge["id"]!.GetValue<string>());
    }

    [Fact]
    public async Task Push_rules_decide_what_is_pushed_and_the_short_format_carries_only_ids()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        var roomId = await bob.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        await alice.JoinAsync(roomId);
        (await alice.PostAsync($"{V3}/pushers/set", Pusher("short", data: new JsonObject { ["format"] = "event_id_only" }))).EnsureSuccess();
        (await alice.PutAsync($"{V3}/pushrules/global/room/{E(roomId)}", new JsonObject { ["actions"] = new JsonArray("dont_notify") })).EnsureSuccess();

        await bob.SendTextAsync(roomId, "muted: not pushed");
        var mention = await bob.SendTextAsync(roomId, $"but a mention of {alice.UserId} is");
        var pushed = (await _gateway.NextAsync(n => n["notification"]!["event_id"] is not null))["notification"]!.AsObject();
        Assert.Equal(mention, pushed["event_id"]!.GetValue<string>());
        Assert.Equal(roomId, pushed["room_id"]!.GetValue<string>());
        Assert.Null(pushed["type"]);
        Assert.Null(pushed["content"]);
        Assert.Equal("high", pushed["prio"]!.GetValue<string>());
        Assert.True(pushed["devices"]![0]!["tweaks"]!["highlight"]!.GetValue<bool>());
    }

    [Fact]
    public async Task An_invite_is_pushed_to_the_invited_user()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        (await alice.PostAsync($"{V3}/pushers/set", Pusher("invitee"))).EnsureSuccess();
        var roomId = await bob.CreateRoomAsync();
        (await bob.PostAsync($"{Room(roomId)}/invite", new JsonObject { ["user_id"] = alice.UserId })).EnsureSuccess();
        var pushed = (await _gateway.NextAsync(n => n["notification"]!["type"]?.GetValue<string>() == "m.room.member"
                                                    && n["notification"]!["room_id"]!.GetValue<string>() == roomId))["notification"]!;
        Assert.Equal("invite", pushed["membership"]!.GetValue<string>());
        Assert.True(pushed["user_is_target"]!.GetValue<bool>());
        Assert.Equal(bob.UserId, pushed["sender"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_failing_gateway_is_retried_and_a_rejected_pushkey_removes_its_pusher()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        var roomId = await bob.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        await alice.JoinAsync(roomId);
        (await alice.PostAsync($"{V3}/pushers/set", Pusher("flaky"))).EnsureSuccess();

        _gateway.FailNext(1);
        await bob.SendTextAsync(roomId, "retried");
        Assert.NotNull(await _gateway.NextAsync(MessageFor("flaky", "retried"), TimeSpan.FromSeconds(20)));

        lock (_gateway.Rejected) _gateway.Rejected.Add("flaky");
        await bob.SendTextAsync(roomId, "rejected");
        await _gateway.NextAsync(MessageFor("flaky", "rejected"));
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (Pushers(await alice.GetAsync($"{V3}/pushers")).Count > 0 && DateTime.UtcNow < deadline) await Task.Delay(50);
        Assert.Empty(Pushers(await alice.GetAsync($"{V3}/pushers")));
    }

    [Fact]
    public async Task Logging_a_device_out_removes_the_pushers_it_set_up()
    {
        var alice = await fx.UserAsync("alice");
        var phone = await MatrixTestClient.LoginAsync(fx.A, alice.UserId);
        (await alice.PostAsync($"{V3}/pushers/set", Pusher("laptop"))).EnsureSuccess();
        (await phone.PostAsync($"{V3}/pushers/set", Pusher("phone"))).EnsureSuccess();
        Assert.Equal(2, Pushers(await alice.GetAsync($"{V3}/pushers")).Count);
        (await phone.PostAsync($"{V3}/logout")).EnsureSuccess();
        Assert.Equal("laptop", Assert.Single(Pushers(await alice.On(fx.B).GetAsync($"{V3}/pushers")))!["pushkey"]!.GetValue<string>());
    }
}

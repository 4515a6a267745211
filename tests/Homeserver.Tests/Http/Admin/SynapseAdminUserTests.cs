using System.Diagnostics;
using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.Admin;

/// <summary>
/// The users half of Synapse's admin API (docs/admin_api/user_admin_api.md) on a 2-silo cluster: who may call it, the
/// shapes Synapse answers, creating and changing accounts, deactivation and password resets revoking tokens on the
/// other silo, the admin flag, devices, and bad input.
/// </summary>
public sealed class SynapseAdminUserTests(SynapseAdminCluster fixture) : IClassFixture<SynapseAdminCluster>
{
    private const string Admin = "/_synapse/admin";
    private static readonly TimeSpan CrossSiloTimeout = TimeSpan.FromSeconds(15);

    private static string User(string userId) => $"{Admin}/v2/users/{MatrixTestClient.Escape(userId)}";

    [Fact]
    public async Task Server_version_needs_no_token()
    {
        var version = (await fixture.A.Http.GetJsonAsync($"{Admin}/v1/server_version")).EnsureSuccess();
        Assert.False(string.IsNullOrEmpty(version["server_version"].GetValue<string>()));
    }

    [Fact]
    public async Task Every_call_refuses_a_non_admin_with_403_and_no_token_with_401()
    {
        var user = await fixture.UserAsync("plain");
        var target = MatrixTestClient.Escape(user.UserId);
        (HttpMethod Method, string Path, JsonObject? Body)[] calls =
        [
            (HttpMethod.Get, $"{Admin}/v2/users", null),
            (HttpMethod.Get, $"{Admin}/v3/users", null),
            (HttpMethod.Get, User(user.UserId), null),
            (HttpMethod.Put, User(user.UserId), new JsonObject { ["admin"] = true }),
            (HttpMethod.Post, $"{Admin}/v1/deactivate/{target}", new JsonObject()),
            (HttpMethod.Post, $"{Admin}/v1/reset_password/{target}", new JsonObject { ["new_password"] = "x" }),
            (HttpMethod.Get, $"{Admin}/v1/users/{target}/admin", null),
            (HttpMethod.Put, $"{Admin}/v1/users/{target}/admin", new JsonObject { ["admin"] = true }),
            (HttpMethod.Get, $"{Admin}/v1/users/{target}/joined_rooms", null),
            (HttpMethod.Get, $"{User(user.UserId)}/devices", null),
            (HttpMethod.Get, $"{User(user.UserId)}/devices/{user.DeviceId}", null),
            (HttpMethod.Put, $"{User(user.UserId)}/devices/{user.DeviceId}", new JsonObject { ["display_name"] = "x" }),
            (HttpMethod.Delete, $"{User(user.UserId)}/devices/{user.DeviceId}", null),
            (HttpMethod.Post, $"{User(user.UserId)}/delete_devices", new JsonObject { ["devices"] = new JsonArray() }),
        ];
        var other = await fixture.UserAsync("nosy");
        foreach (var (method, path, body) in calls)
        {
            var refused = await other.Http.SendJsonAsync(method, path, body?.DeepClone());
            Assert.True(refused.StatusCode == 403, $"{method} {path}: {refused.StatusCode} {refused.Text}");
            Assert.Equal("M_FORBIDDEN", refused.ErrCode);
            var anonymous = await fixture.A.Http.SendJsonAsync(method, path, body?.DeepClone());
            Assert.True(anonymous.StatusCode == 401, $"{method} {path} without a token: {anonymous.StatusCode}");
        }
        // Nothing happened to the user.
        (await user.GetAsync("/_matrix/client/v3/account/whoami")).EnsureSuccess();
        // Whois about someone else needs an admin too, at Synapse's path.
        Assert.Equal(403, (await other.GetAsync($"{Admin}/v1/whois/{target}")).StatusCode);
    }

    [Fact]
    public async Task Query_user_answers_synapses_user_object()
    {
        var admin = await fixture.AdminAsync();
        var alice = await fixture.UserAsync("query");
        var before = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

        var user = (await admin.GetAsync(User(alice.UserId))).EnsureSuccess();

        Assert.Equal(alice.UserId, user["name"].GetValue<string>());
        Assert.Equal(alice.UserId[1..alice.UserId.IndexOf(':')], user["displayname"].GetValue<string>());
        Assert.Null(user.Body!["avatar_url"]);
        Assert.False(user["admin"].GetValue<bool>());
        Assert.False(user["deactivated"].GetValue<bool>());
        Assert.False(user["erased"].GetValue<bool>());
        Assert.False(user["is_guest"].GetValue<bool>());
        Assert.False(user["locked"].GetValue<bool>());
        Assert.False(user["shadow_banned"].GetValue<bool>());
        Assert.Empty(user["threepids"].AsArray());
        Assert.Empty(user["external_ids"].AsArray());
        Assert.Null(user.Body!["user_type"]);
        // Seconds, as Synapse answers this call.
        Assert.InRange(user["creation_ts"].GetValue<long>(), before - 60, before + 1);

        Assert.Equal(404, (await admin.GetAsync(User("@nobody-here:localhost"))).StatusCode);
        var remote = await admin.GetAsync(User("@someone:elsewhere.example"));
        Assert.Equal(400, remote.StatusCode);
        Assert.Equal("Can only look up local users", remote["error"].GetValue<string>());
        Assert.Equal("M_INVALID_PARAM", (await admin.GetAsync(User("not-a-user-id"))).ErrCode);
    }

    [Fact]
    public async Task Put_creates_an_account_with_201_and_modifies_it_with_200()
    {
        var admin = await fixture.AdminAsync();
        var localpart = MatrixTestClient.UniqueLocalpart("created");
        var userId = $"@{localpart}:localhost";

        var created = await admin.PutAsync(User(userId), new JsonObject
        {
            ["password"] = "first password", ["displayname"] = "Created One", ["avatar_url"] = "mxc://localhost/abc",
            ["admin"] = false, ["user_type"] = "support",
        });
        Assert.Equal(201, created.StatusCode);
        Assert.Equal(userId, created["name"].GetValue<string>());
        Assert.Equal("Created One", created["displayname"].GetValue<string>());
        Assert.Equal("mxc://localhost/abc", created["avatar_url"].GetValue<string>());
        Assert.Equal("support", created["user_type"].GetValue<string>());
        var user = await MatrixTestClient.LoginAsync(fixture.B, localpart, "first password");
        var profile = (await user.GetAsync($"/_matrix/client/v3/profile/{MatrixTestClient.Escape(userId)}")).EnsureSuccess();
        Assert.Equal("Created One", profile["displayname"].GetValue<string>());

        var modified = await admin.PutAsync(User(userId), new JsonObject
        {
            ["password"] = "second password", ["displayname"] = "Renamed", ["admin"] = true, ["user_type"] = null,
        });
        Assert.Equal(200, modified.StatusCode);
        Assert.Equal("Renamed", modified["displayname"].GetValue<string>());
        Assert.True(modified["admin"].GetValue<bool>());
        Assert.Null(modified.Body!["user_type"]);
        // The new password logged out the old session (logout_devices defaults to true), on the other silo too.
        await WaitUntilRefusedAsync(user.On(fixture.B));
        var again = await MatrixTestClient.LoginAsync(fixture.A, localpart, "second password");
        (await again.GetAsync($"{Admin}/v2/users")).EnsureSuccess();
    }

    [Fact]
    public async Task Put_deactivates_and_reactivates_only_with_a_password()
    {
        var admin = await fixture.AdminAsync();
        var bob = await fixture.UserAsync("reactivate");

        var deactivated = (await admin.PutAsync(User(bob.UserId), new JsonObject { ["deactivated"] = true })).EnsureSuccess();
        Assert.True(deactivated["deactivated"].GetValue<bool>());
        await WaitUntilRefusedAsync(bob);

        var withoutPassword = await admin.PutAsync(User(bob.UserId), new JsonObject { ["deactivated"] = false });
        Assert.Equal(400, withoutPassword.StatusCode);
        Assert.True((await admin.GetAsync(User(bob.UserId))).EnsureSuccess()["deactivated"].GetValue<bool>());

        var reactivated = (await admin.PutAsync(User(bob.UserId), new JsonObject { ["deactivated"] = false, ["password"] = "back again" }))
            .EnsureSuccess();
        Assert.False(reactivated["deactivated"].GetValue<bool>());
        await MatrixTestClient.LoginAsync(fixture.B, bob.UserId, "back again");
    }

    [Fact]
    public async Task Put_refuses_bad_input()
    {
        var admin = await fixture.AdminAsync();
        var target = User($"@{MatrixTestClient.UniqueLocalpart("bad")}:localhost");
        Assert.Equal("M_BAD_JSON", (await admin.PutAsync(target, new JsonObject { ["admin"] = "yes" })).ErrCode);
        Assert.Equal("Invalid user type", (await admin.PutAsync(target, new JsonObject { ["user_type"] = "robot" }))["error"].GetValue<string>());
        Assert.Equal(400, (await admin.PutAsync(target, new JsonObject { ["password"] = 12 })).StatusCode);
        Assert.Equal(400, (await admin.PutAsync(target, new JsonObject { ["deactivated"] = "no" })).StatusCode);
        Assert.Equal("M_NOT_JSON", (await admin.PutAsync(target, "not json")).ErrCode);
        Assert.Equal("M_INVALID_USERNAME", (await admin.PutAsync(User("@Upper:localhost"), new JsonObject())).ErrCode);
        var remote = await admin.PutAsync(User("@someone:elsewhere.example"), new JsonObject());
        Assert.Equal("This endpoint can only be used with local users", remote["error"].GetValue<string>());
        // None of these created the account.
        Assert.Equal(404, (await admin.GetAsync(target)).StatusCode);
        // An admin may not demote themselves.
        var demote = await admin.PutAsync(User(admin.UserId), new JsonObject { ["admin"] = false });
        Assert.Equal(400, demote.StatusCode);
        Assert.Equal("You may not demote yourself.", demote["error"].GetValue<string>());
    }

    [Fact]
    public async Task An_admin_deactivating_through_one_silo_revokes_the_users_token_on_the_other()
    {
        var admin = (await fixture.AdminAsync()).On(fixture.B);
        var carol = await fixture.UserAsync("deactivated");
        var room = await carol.CreateRoomAsync();

        var answer = (await admin.PostAsync($"{Admin}/v1/deactivate/{MatrixTestClient.Escape(carol.UserId)}",
            new JsonObject { ["erase"] = true })).EnsureSuccess();

        Assert.Equal("success", answer["id_server_unbind_result"].GetValue<string>());
        // Refused at once on the silo that served the deactivation, and soon on the other.
        Assert.Equal(401, (await carol.On(fixture.B).GetAsync("/_matrix/client/v3/account/whoami")).StatusCode);
        await WaitUntilRefusedAsync(carol);
        var user = (await admin.GetAsync(User(carol.UserId))).EnsureSuccess();
        Assert.True(user["deactivated"].GetValue<bool>());
        Assert.True(user["erased"].GetValue<bool>());
        var login = await fixture.A.Http.PostJsonAsync("/_matrix/client/v3/login", new JsonObject
        {
            ["type"] = "m.login.password", ["identifier"] = new JsonObject { ["type"] = "m.id.user", ["user"] = carol.UserId },
            ["password"] = carol.Password,
        });
        Assert.Equal("M_USER_DEACTIVATED", login.ErrCode);
        // The user left their room.
        var members = (await admin.GetAsync($"/_matrix/client/v3/rooms/{MatrixTestClient.Escape(room)}/joined_members")).StatusCode;
        Assert.Equal(403, members);

        Assert.Equal(404, (await admin.PostAsync($"{Admin}/v1/deactivate/{MatrixTestClient.Escape("@nobody-here:localhost")}")).StatusCode);
        Assert.Equal("M_BAD_JSON", (await admin.PostAsync($"{Admin}/v1/deactivate/{MatrixTestClient.Escape(carol.UserId)}",
            new JsonObject { ["erase"] = "yes" })).ErrCode);
    }

    [Fact]
    public async Task Reset_password_logs_the_user_out_unless_told_not_to()
    {
        var admin = await fixture.AdminAsync();
        var dave = await fixture.UserAsync("reset");
        var path = $"{Admin}/v1/reset_password/{MatrixTestClient.Escape(dave.UserId)}";

        (await admin.PostAsync(path, new JsonObject { ["new_password"] = "kept session", ["logout_devices"] = false })).EnsureSuccess();
        (await dave.On(fixture.B).GetAsync("/_matrix/client/v3/account/whoami")).EnsureSuccess();
        await MatrixTestClient.LoginAsync(fixture.A, dave.UserId, "kept session");

        Assert.Equal(400, (await admin.PostAsync(path, new JsonObject())).StatusCode);
        (await admin.PostAsync(path, new JsonObject { ["new_password"] = "new session" })).EnsureSuccess();
        Assert.Equal(401, (await dave.GetAsync("/_matrix/client/v3/account/whoami")).StatusCode);
        await WaitUntilRefusedAsync(dave.On(fixture.B));
        await MatrixTestClient.LoginAsync(fixture.B, dave.UserId, "new session");
    }

    [Fact]
    public async Task The_admin_flag_can_be_read_and_set()
    {
        var admin = await fixture.AdminAsync();
        var erin = await fixture.UserAsync("flag");
        var path = $"{Admin}/v1/users/{MatrixTestClient.Escape(erin.UserId)}/admin";

        Assert.False((await admin.GetAsync(path)).EnsureSuccess()["admin"].GetValue<bool>());
        Assert.Equal(403, (await erin.GetAsync($"{Admin}/v2/users")).StatusCode);

        (await admin.PutAsync(path, new JsonObject { ["admin"] = true })).EnsureSuccess();
        Assert.True((await admin.GetAsync(path)).EnsureSuccess()["admin"].GetValue<bool>());
        (await erin.On(fixture.B).GetAsync($"{Admin}/v2/users")).EnsureSuccess();

        Assert.Equal("M_MISSING_PARAM", (await admin.PutAsync(path, new JsonObject())).ErrCode);
        Assert.Equal("You may not demote yourself.",
            (await erin.PutAsync(path, new JsonObject { ["admin"] = false }))["error"].GetValue<string>());
        var remote = await admin.GetAsync($"{Admin}/v1/users/{MatrixTestClient.Escape("@x:elsewhere.example")}/admin");
        Assert.Equal("Only local users can be admins of this homeserver", remote["error"].GetValue<string>());
    }

    [Fact]
    public async Task List_users_pages_filters_and_orders()
    {
        var admin = await fixture.AdminAsync();
        var tag = Guid.NewGuid().ToString("N")[..8];
        var names = new List<string>();
        for (var i = 0; i < 3; i++) names.Add((await MatrixTestClient.RegisterAsync(fixture.A, $"list{tag}n{i}")).UserId);
        var gone = await MatrixTestClient.RegisterAsync(fixture.A, $"list{tag}gone");
        (await admin.PostAsync($"{Admin}/v1/deactivate/{MatrixTestClient.Escape(gone.UserId)}")).EnsureSuccess();

        var first = (await admin.GetAsync($"{Admin}/v2/users?user_id={tag}&limit=2")).EnsureSuccess();
        Assert.Equal(3, first["total"].GetValue<long>());
        Assert.Equal(names.Take(2), first["users"].AsArray().Select(u => u!["name"]!.GetValue<string>()));
        Assert.Equal("2", first["next_token"].GetValue<string>());
        var entry = first["users"].AsArray()[0]!;
        Assert.False(entry["admin"]!.GetValue<bool>());
        Assert.Equal($"list{tag}n0", entry["displayname"]!.GetValue<string>());
        Assert.InRange(entry["creation_ts"]!.GetValue<long>(), DateTimeOffset.UtcNow.AddMinutes(-5).ToUnixTimeMilliseconds(),
            DateTimeOffset.UtcNow.AddSeconds(5).ToUnixTimeMilliseconds());

        var second = (await admin.GetAsync($"{Admin}/v2/users?user_id={tag}&limit=2&from=2")).EnsureSuccess();
        Assert.Equal([names[2]], second["users"].AsArray().Select(u => u!["name"]!.GetValue<string>()));
        Assert.Null(second.Body!["next_token"]);

        var backwards = (await admin.GetAsync($"{Admin}/v2/users?user_id={tag}&dir=b")).EnsureSuccess();
        Assert.Equal(names.AsEnumerable().Reverse(), backwards["users"].AsArray().Select(u => u!["name"]!.GetValue<string>()));

        var withDeactivated = (await admin.GetAsync($"{Admin}/v2/users?user_id={tag}&deactivated=true")).EnsureSuccess();
        Assert.Equal(4, withDeactivated["total"].GetValue<long>());
        var onlyDeactivated = (await admin.GetAsync($"{Admin}/v3/users?user_id={tag}&deactivated=true")).EnsureSuccess();
        Assert.Equal([gone.UserId], onlyDeactivated["users"].AsArray().Select(u => u!["name"]!.GetValue<string>()));

        (await admin.PutAsync($"{Admin}/v1/users/{MatrixTestClient.Escape(names[1])}/admin", new JsonObject { ["admin"] = true })).EnsureSuccess();
        var admins = (await admin.GetAsync($"{Admin}/v2/users?user_id={tag}&admins=true")).EnsureSuccess();
        Assert.Equal([names[1]], admins["users"].AsArray().Select(u => u!["name"]!.GetValue<string>()));
        var notAdmins = (await admin.GetAsync($"{Admin}/v2/users?user_id={tag}&admins=false")).EnsureSuccess();
        Assert.Equal(2, notAdmins["total"].GetValue<long>());

        // `name` searches the display name too.
        (await admin.PutAsync(User(names[2]), new JsonObject { ["displayname"] = $"zz searchable {tag}" })).EnsureSuccess();
        var byName = (await admin.GetAsync($"{Admin}/v2/users?name=searchable%20{tag}")).EnsureSuccess();
        Assert.Equal([names[2]], byName["users"].AsArray().Select(u => u!["name"]!.GetValue<string>()));
        var byDisplayName = (await admin.GetAsync($"{Admin}/v2/users?user_id={tag}&order_by=displayname")).EnsureSuccess();
        Assert.Equal(names[2], byDisplayName["users"].AsArray()[2]!["name"]!.GetValue<string>());

        Assert.Equal("M_INVALID_PARAM", (await admin.GetAsync($"{Admin}/v2/users?order_by=password")).ErrCode);
        Assert.Equal("M_INVALID_PARAM", (await admin.GetAsync($"{Admin}/v2/users?dir=sideways")).ErrCode);
        Assert.Equal("M_INVALID_PARAM", (await admin.GetAsync($"{Admin}/v2/users?limit=-1")).ErrCode);
        Assert.Equal("M_INVALID_PARAM", (await admin.GetAsync($"{Admin}/v2/users?guests=maybe")).ErrCode);
    }

    [Fact]
    public async Task Joined_rooms_lists_the_rooms_a_user_is_in()
    {
        var admin = await fixture.AdminAsync();
        var henry = await fixture.UserAsync("rooms");
        var kept = await henry.CreateRoomAsync();
        var left = await henry.CreateRoomAsync();
        (await henry.PostAsync($"/_matrix/client/v3/rooms/{MatrixTestClient.Escape(left)}/leave")).EnsureSuccess();
        await fixture.SettleAsync();

        var rooms = (await admin.On(fixture.B).GetAsync($"{Admin}/v1/users/{MatrixTestClient.Escape(henry.UserId)}/joined_rooms")).EnsureSuccess();
        Assert.Equal([kept], rooms["joined_rooms"].AsArray().Select(r => r!.GetValue<string>()));
        Assert.Equal(1, rooms["total"].GetValue<int>());
        Assert.Equal(403, (await henry.GetAsync($"{Admin}/v1/users/{MatrixTestClient.Escape(henry.UserId)}/joined_rooms")).StatusCode);
    }

    [Fact]
    public async Task Guests_are_listed_unless_excluded()
    {
        var admin = await fixture.AdminAsync();
        var guest = (await fixture.A.Http.PostJsonAsync("/_matrix/client/v3/register?kind=guest", new JsonObject())).EnsureSuccess();
        var guestId = guest["user_id"].GetValue<string>();
        var localpart = guestId[1..guestId.IndexOf(':')];

        Assert.True((await admin.GetAsync(User(guestId))).EnsureSuccess()["is_guest"].GetValue<bool>());
        var listed = (await admin.GetAsync($"{Admin}/v2/users?user_id={localpart}")).EnsureSuccess();
        Assert.Equal([guestId], listed["users"].AsArray().Select(u => u!["name"]!.GetValue<string>()));
        Assert.True(listed["users"].AsArray()[0]!["is_guest"]!.GetValue<bool>());
        var excluded = (await admin.GetAsync($"{Admin}/v2/users?user_id={localpart}&guests=false")).EnsureSuccess();
        Assert.Equal(0, excluded["total"].GetValue<long>());
    }

    [Fact]
    public async Task Devices_are_listed_renamed_and_deleted_by_an_admin()
    {
        var admin = await fixture.AdminAsync();
        var frank = await fixture.UserAsync("devices");
        var second = await MatrixTestClient.LoginAsync(fixture.B, frank.UserId, deviceId: "SECOND");
        (await second.GetAsync("/_matrix/client/v3/account/whoami")).EnsureSuccess();
        var devicesPath = $"{User(frank.UserId)}/devices";

        var list = (await admin.On(fixture.B).GetAsync(devicesPath)).EnsureSuccess();
        Assert.Equal(2, list["total"].GetValue<int>());
        var secondDevice = list["devices"].AsArray().Single(d => d!["device_id"]!.GetValue<string>() == "SECOND")!;
        Assert.Equal(frank.UserId, secondDevice["user_id"]!.GetValue<string>());
        Assert.Equal("127.0.0.1", secondDevice["last_seen_ip"]!.GetValue<string>());

        (await admin.PutAsync($"{devicesPath}/SECOND", new JsonObject { ["display_name"] = "renamed by admin" })).EnsureSuccess();
        var device = (await admin.GetAsync($"{devicesPath}/SECOND")).EnsureSuccess();
        Assert.Equal("renamed by admin", device["display_name"].GetValue<string>());
        Assert.Equal(404, (await admin.GetAsync($"{devicesPath}/NOSUCH")).StatusCode);
        Assert.Equal(404, (await admin.PutAsync($"{devicesPath}/NOSUCH", new JsonObject { ["display_name"] = "x" })).StatusCode);

        (await admin.DeleteAsync($"{devicesPath}/SECOND")).EnsureSuccess();
        Assert.Equal(401, (await second.On(fixture.A).GetAsync("/_matrix/client/v3/account/whoami")).StatusCode);
        await WaitUntilRefusedAsync(second);

        (await admin.PostAsync($"{User(frank.UserId)}/delete_devices", new JsonObject { ["devices"] = new JsonArray(frank.DeviceId, "NOSUCH") }))
            .EnsureSuccess();
        Assert.Equal(401, (await frank.GetAsync("/_matrix/client/v3/account/whoami")).StatusCode);
        Assert.Equal(0, (await admin.GetAsync(devicesPath)).EnsureSuccess()["total"].GetValue<int>());

        Assert.Equal("M_MISSING_PARAM", (await admin.PostAsync($"{User(frank.UserId)}/delete_devices", new JsonObject())).ErrCode);
        Assert.Equal(404, (await admin.GetAsync($"{User("@nobody-here:localhost")}/devices")).StatusCode);
    }

    [Fact]
    public async Task Whois_at_synapses_path_answers_as_the_client_apis()
    {
        var admin = await fixture.AdminAsync();
        var grace = await fixture.UserAsync("whois");
        (await grace.GetAsync("/_matrix/client/v3/account/whoami")).EnsureSuccess();

        var synapse = (await admin.GetAsync($"{Admin}/v1/whois/{MatrixTestClient.Escape(grace.UserId)}")).EnsureSuccess();
        var client = (await admin.GetAsync($"/_matrix/client/v3/admin/whois/{MatrixTestClient.Escape(grace.UserId)}")).EnsureSuccess();
        Assert.Equal(grace.UserId, synapse["user_id"].GetValue<string>());
        Assert.Equal(client.Text, synapse.Text);
        Assert.NotNull(synapse["devices"][grace.DeviceId]);
        var remote = await admin.GetAsync($"{Admin}/v1/whois/{MatrixTestClient.Escape("@x:elsewhere.example")}");
        Assert.Equal(400, remote.StatusCode);
    }

    private static async Task WaitUntilRefusedAsync(MatrixTestClient client)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < CrossSiloTimeout)
        {
            if ((await client.GetAsync("/_matrix/client/v3/account/whoami")).StatusCode == 401) return;
            await Task.Delay(100);
        }
        Assert.Fail($"{client.UserId}'s token still works on silo {client.Silo.Index}");
    }
}

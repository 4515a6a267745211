using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.Accounts;

[Collection(AccountsCollection.Name)]
public sealed class LoginTests(AccountsCluster fixture)
{
    private const string Login = "/_matrix/client/v3/login";
    private const string WhoAmI = "/_matrix/client/v3/account/whoami";

    private static JsonObject PasswordLogin(string user, string password, string? deviceId = null)
    {
        var body = new JsonObject
        {
            ["type"] = "m.login.password",
            ["identifier"] = new JsonObject { ["type"] = "m.id.user", ["user"] = user },
            ["password"] = password,
        };
        if (deviceId is not null) body["device_id"] = deviceId;
        return body;
    }

    [Fact]
    public async Task Registered_user_is_known_by_whoami_on_both_silos()
    {
        var alice = await MatrixTestClient.RegisterAsync(fixture.A);
        foreach (var client in new[] { alice, alice.On(fixture.B) })
        {
            var me = (await client.GetAsync(WhoAmI)).EnsureSuccess();
            Assert.Equal(alice.UserId, me["user_id"].GetValue<string>());
            Assert.Equal(alice.DeviceId, me["device_id"].GetValue<string>());
            Assert.False(me["is_guest"].GetValue<bool>());
        }
    }

    [Fact]
    public async Task Get_login_lists_the_password_flow()
    {
        var r = (await fixture.A.Http.GetJsonAsync(Login)).EnsureSuccess();
        Assert.Contains(r["flows"].AsArray(), f => f!["type"]!.GetValue<string>() == "m.login.password");
    }

    [Fact]
    public async Task Login_by_localpart_full_user_id_and_deprecated_user_field()
    {
        var localpart = MatrixTestClient.UniqueLocalpart("login");
        var alice = await MatrixTestClient.RegisterAsync(fixture.A, localpart);

        var byLocalpart = (await fixture.B.Http.PostJsonAsync(Login, PasswordLogin(localpart, alice.Password))).EnsureSuccess();
        var byUserId = (await fixture.B.Http.PostJsonAsync(Login, PasswordLogin(alice.UserId, alice.Password))).EnsureSuccess();
        var deprecated = (await fixture.A.Http.PostJsonAsync(Login,
            new { type = "m.login.password", user = localpart, password = alice.Password })).EnsureSuccess();

        foreach (var r in new[] { byLocalpart, byUserId, deprecated })
        {
            Assert.Equal(alice.UserId, r["user_id"].GetValue<string>());
            Assert.Equal("localhost", r["home_server"].GetValue<string>());
            var token = r["access_token"].GetValue<string>();
            var me = (await fixture.A.Http.GetJsonAsync(WhoAmI, token)).EnsureSuccess();
            Assert.Equal(r["device_id"].GetValue<string>(), me["device_id"].GetValue<string>());
        }
        // Every login without a device id makes a new device.
        Assert.Equal(3, new[] { byLocalpart, byUserId, deprecated }.Select(r => r["device_id"].GetValue<string>()).Distinct().Count());
    }

    [Fact]
    public async Task Wrong_password_and_unknown_user_are_forbidden()
    {
        var alice = await MatrixTestClient.RegisterAsync(fixture.A);
        var wrong = await fixture.A.Http.PostJsonAsync(Login, PasswordLogin(alice.UserId, "not the password"));
        Assert.Equal(403, wrong.StatusCode);
        Assert.Equal("M_FORBIDDEN", wrong.ErrCode);

        var unknown = await fixture.B.Http.PostJsonAsync(Login, PasswordLogin("nobody_" + Guid.NewGuid().ToString("N"), "x"));
        Assert.Equal(403, unknown.StatusCode);
        Assert.Equal("M_FORBIDDEN", unknown.ErrCode);

        var otherServer = await fixture.B.Http.PostJsonAsync(Login, PasswordLogin(alice.UserId.Replace(":localhost", ":elsewhere"), alice.Password));
        Assert.Equal(403, otherServer.StatusCode);
    }

    [Fact]
    public async Task Unknown_login_type_is_M_UNKNOWN()
    {
        var r = await fixture.A.Http.PostJsonAsync(Login, new { type = "m.login.nonsense", user = "x", password = "y" });
        Assert.Equal(400, r.StatusCode);
        Assert.Equal("M_UNKNOWN", r.ErrCode);
    }

    [Fact]
    public async Task Malformed_login_bodies_are_rejected()
    {
        var notJson = await fixture.A.Http.PostJsonAsync(Login, "{not json");
        Assert.Equal(400, notJson.StatusCode);
        Assert.Equal("M_NOT_JSON", notJson.ErrCode);

        var notObject = await fixture.A.Http.PostJsonAsync(Login, "[1,2]");
        Assert.Equal(400, notObject.StatusCode);
        Assert.Equal("M_BAD_JSON", notObject.ErrCode);

        var badType = await fixture.A.Http.PostJsonAsync(Login, new { type = 5 });
        Assert.Equal(400, badType.StatusCode);
        Assert.Equal("M_BAD_JSON", badType.ErrCode);

        var noUser = await fixture.A.Http.PostJsonAsync(Login, new { type = "m.login.password", password = "x" });
        Assert.Equal(400, noUser.StatusCode);
        Assert.Equal("M_MISSING_PARAM", noUser.ErrCode);
    }

    [Fact]
    public async Task Login_with_an_existing_device_id_replaces_that_devices_token_on_every_silo()
    {
        var alice = await MatrixTestClient.RegisterAsync(fixture.A, deviceId: "PHONE");
        Assert.Equal("PHONE", alice.DeviceId);
        // Cache the first token on B.
        (await alice.On(fixture.B).GetAsync(WhoAmI)).EnsureSuccess();

        var again = await MatrixTestClient.LoginAsync(fixture.A, alice.UserId, alice.Password, deviceId: "PHONE");
        Assert.Equal("PHONE", again.DeviceId);
        Assert.NotEqual(alice.AccessToken, again.AccessToken);

        var old = await alice.GetAsync(WhoAmI);
        Assert.Equal(401, old.StatusCode);
        Assert.Equal("M_UNKNOWN_TOKEN", old.ErrCode);
        await CrossSilo.WaitForAsync(fixture.A, fixture.B);
        Assert.Equal(401, (await alice.On(fixture.B).GetAsync(WhoAmI)).StatusCode);
        (await again.On(fixture.B).GetAsync(WhoAmI)).EnsureSuccess();

        var devices = (await again.GetAsync("/_matrix/client/v3/devices")).EnsureSuccess();
        Assert.Single(devices["devices"].AsArray());
    }

    [Fact]
    public async Task Initial_device_display_name_is_kept()
    {
        var alice = await MatrixTestClient.RegisterAsync(fixture.A);
        var body = PasswordLogin(alice.UserId, alice.Password);
        body["initial_device_display_name"] = "My laptop";
        var r = (await fixture.B.Http.PostJsonAsync(Login, body)).EnsureSuccess();
        var deviceId = r["device_id"].GetValue<string>();
        var device = (await alice.GetAsync($"/_matrix/client/v3/devices/{deviceId}")).EnsureSuccess();
        Assert.Equal("My laptop", device["display_name"].GetValue<string>());
    }

    [Fact]
    public async Task Requests_without_or_with_a_bad_token_are_401()
    {
        var missing = await fixture.A.Http.GetJsonAsync(WhoAmI);
        Assert.Equal(401, missing.StatusCode);
        Assert.Equal("M_MISSING_TOKEN", missing.ErrCode);

        var unknown = await fixture.B.Http.GetJsonAsync(WhoAmI, "hs_not_a_real_token");
        Assert.Equal(401, unknown.StatusCode);
        Assert.Equal("M_UNKNOWN_TOKEN", unknown.ErrCode);

        var alice = await MatrixTestClient.RegisterAsync(fixture.A);
        var query = await fixture.B.Http.GetJsonAsync($"{WhoAmI}?access_token={Uri.EscapeDataString(alice.AccessToken)}");
        Assert.Equal(alice.UserId, query.EnsureSuccess()["user_id"].GetValue<string>());
    }
}

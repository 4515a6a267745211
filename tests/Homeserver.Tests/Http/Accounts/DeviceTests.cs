using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.Accounts;

[Collection(AccountsCollection.Name)]
public sealed class DeviceTests(AccountsCluster fixture)
{
    private const string Devices = "/_matrix/client/v3/devices";
    private const string WhoAmI = "/_matrix/client/v3/account/whoami";

    private static JsonObject PasswordAuth(MatrixTestClient client, string? session, string? password = null) => new()
    {
        ["type"] = "m.login.password",
        ["identifier"] = new JsonObject { ["type"] = "m.id.user", ["user"] = client.UserId },
        ["password"] = password ?? client.Password,
        ["session"] = session,
    };

    [Fact]
    public async Task Devices_are_listed_read_and_renamed_from_either_silo()
    {
        var phone = await MatrixTestClient.RegisterAsync(fixture.A, deviceId: "PHONE");
        var laptop = await MatrixTestClient.LoginAsync(fixture.B, phone.UserId, phone.Password, deviceId: "LAPTOP");

        var list = (await phone.On(fixture.B).GetAsync(Devices)).EnsureSuccess();
        Assert.Equal(["LAPTOP", "PHONE"], list["devices"].AsArray().Select(d => d!["device_id"]!.GetValue<string>()).Order());

        (await laptop.PutAsync($"{Devices}/PHONE", new { display_name = "Old phone" })).EnsureSuccess();
        var phoneDevice = (await phone.GetAsync($"{Devices}/PHONE")).EnsureSuccess();
        Assert.Equal("PHONE", phoneDevice["device_id"].GetValue<string>());
        Assert.Equal("Old phone", phoneDevice["display_name"].GetValue<string>());

        // Renaming does not touch the session.
        (await phone.GetAsync(WhoAmI)).EnsureSuccess();
    }

    [Fact]
    public async Task Unknown_or_foreign_devices_are_not_found()
    {
        var alice = await MatrixTestClient.RegisterAsync(fixture.A);
        var bob = await MatrixTestClient.RegisterAsync(fixture.B);

        var unknown = await alice.GetAsync($"{Devices}/NOPE");
        Assert.Equal(404, unknown.StatusCode);
        Assert.Equal("M_NOT_FOUND", unknown.ErrCode);

        var foreign = await alice.GetAsync($"{Devices}/{bob.DeviceId}");
        Assert.Equal(404, foreign.StatusCode);

        var rename = await alice.PutAsync($"{Devices}/{bob.DeviceId}", new { display_name = "mine now" });
        Assert.Equal(404, rename.StatusCode);
        Assert.Equal("M_NOT_FOUND", rename.ErrCode);
    }

    [Fact]
    public async Task Device_endpoints_require_auth_and_json()
    {
        var missing = await fixture.A.Http.GetJsonAsync(Devices);
        Assert.Equal(401, missing.StatusCode);
        Assert.Equal("M_MISSING_TOKEN", missing.ErrCode);

        var alice = await MatrixTestClient.RegisterAsync(fixture.A);
        var notJson = await alice.PutAsync($"{Devices}/{alice.DeviceId}", "not json");
        Assert.Equal(400, notJson.StatusCode);
        Assert.Equal("M_NOT_JSON", notJson.ErrCode);

        var badName = await alice.PutAsync($"{Devices}/{alice.DeviceId}", new { display_name = 7 });
        Assert.Equal("M_BAD_JSON", badName.ErrCode);

        var badList = await alice.PostAsync("/_matrix/client/v3/delete_devices", new { devices = "ABC" });
        Assert.Equal("M_BAD_JSON", badList.ErrCode);
    }

    [Fact]
    public async Task Deleting_a_device_needs_the_password_and_revokes_its_token_everywhere()
    {
        var phone = await MatrixTestClient.RegisterAsync(fixture.A, deviceId: "PHONE");
        var laptop = await MatrixTestClient.LoginAsync(fixture.A, phone.UserId, phone.Password, deviceId: "LAPTOP");
        (await phone.On(fixture.B).GetAsync(WhoAmI)).EnsureSuccess();

        // First attempt without a body: the server asks for the password.
        var challenge = await laptop.On(fixture.B).DeleteAsync($"{Devices}/PHONE");
        Assert.Equal(401, challenge.StatusCode);
        Assert.Equal("m.login.password", challenge["flows"][0]!["stages"]![0]!.GetValue<string>());
        var session = challenge["session"].GetValue<string>();
        (await phone.GetAsync(WhoAmI)).EnsureSuccess();

        var wrong = await laptop.DeleteAsync($"{Devices}/PHONE", new JsonObject { ["auth"] = PasswordAuth(laptop, session, "wrong") });
        Assert.Equal(401, wrong.StatusCode);
        Assert.Equal("M_FORBIDDEN", wrong.ErrCode);
        Assert.Equal(session, wrong["session"].GetValue<string>());
        (await phone.GetAsync(WhoAmI)).EnsureSuccess();

        (await laptop.DeleteAsync($"{Devices}/PHONE", new JsonObject { ["auth"] = PasswordAuth(laptop, session) })).EnsureSuccess();
        var rejected = await phone.GetAsync(WhoAmI);
        Assert.Equal("M_UNKNOWN_TOKEN", rejected.ErrCode);
        await CrossSilo.WaitForAsync(fixture.A, fixture.B);
        Assert.Equal("M_UNKNOWN_TOKEN", (await phone.On(fixture.B).GetAsync(WhoAmI)).ErrCode);

        Assert.Equal(404, (await laptop.GetAsync($"{Devices}/PHONE")).StatusCode);
        (await laptop.On(fixture.B).GetAsync(WhoAmI)).EnsureSuccess();
    }

    [Fact]
    public async Task A_session_opened_to_delete_one_device_cannot_delete_another()
    {
        var phone = await MatrixTestClient.RegisterAsync(fixture.A, deviceId: "PHONE");
        var laptop = await MatrixTestClient.LoginAsync(fixture.A, phone.UserId, phone.Password, deviceId: "LAPTOP");
        var session = (await laptop.DeleteAsync($"{Devices}/PHONE"))["session"].GetValue<string>();

        var other = await laptop.DeleteAsync($"{Devices}/LAPTOP", new JsonObject { ["auth"] = PasswordAuth(laptop, session) });
        Assert.Equal(403, other.StatusCode);
        Assert.Equal("M_FORBIDDEN", other.ErrCode);
        (await laptop.GetAsync(WhoAmI)).EnsureSuccess();

        // The session still does what it was opened for.
        (await laptop.DeleteAsync($"{Devices}/PHONE", new JsonObject { ["auth"] = PasswordAuth(laptop, session) })).EnsureSuccess();
        Assert.Equal(404, (await laptop.GetAsync($"{Devices}/PHONE")).StatusCode);
    }

    [Fact]
    public async Task Another_users_password_does_not_authorise_deleting_my_device()
    {
        var alice = await MatrixTestClient.RegisterAsync(fixture.A);
        var bob = await MatrixTestClient.RegisterAsync(fixture.A);
        var r = await alice.DeleteAsync($"{Devices}/{alice.DeviceId}", new JsonObject { ["auth"] = PasswordAuth(bob, null) });
        Assert.Equal(403, r.StatusCode);
        Assert.Equal("M_FORBIDDEN", r.ErrCode);
        (await alice.GetAsync(WhoAmI)).EnsureSuccess();
    }

    [Fact]
    public async Task Delete_devices_removes_several_at_once_and_ignores_unknown_ids()
    {
        var a = await MatrixTestClient.RegisterAsync(fixture.A, deviceId: "ONE");
        var b = await MatrixTestClient.LoginAsync(fixture.B, a.UserId, a.Password, deviceId: "TWO");
        var c = await MatrixTestClient.LoginAsync(fixture.A, a.UserId, a.Password, deviceId: "THREE");

        var body = new JsonObject { ["devices"] = new JsonArray("ONE", "TWO", "NOT_A_DEVICE") };
        var challenge = await c.PostAsync("/_matrix/client/v3/delete_devices", body);
        Assert.Equal(401, challenge.StatusCode);

        body = new JsonObject
        {
            ["devices"] = new JsonArray("ONE", "TWO", "NOT_A_DEVICE"),
            ["auth"] = PasswordAuth(c, challenge["session"].GetValue<string>()),
        };
        (await c.On(fixture.B).PostAsync("/_matrix/client/v3/delete_devices", body)).EnsureSuccess();
        await CrossSilo.WaitForAsync(fixture.B, fixture.A);
        foreach (var gone in new[] { a, b })
            foreach (var silo in fixture.Cluster.Silos)
                Assert.Equal(401, (await gone.On(silo).GetAsync(WhoAmI)).StatusCode);

        var list = (await c.GetAsync(Devices)).EnsureSuccess();
        Assert.Equal(["THREE"], list["devices"].AsArray().Select(d => d!["device_id"]!.GetValue<string>()));

        var missing = await c.PostAsync("/_matrix/client/v3/delete_devices", new JsonObject { ["auth"] = PasswordAuth(c, null) });
        Assert.Equal(400, missing.StatusCode);
        Assert.Equal("M_MISSING_PARAM", missing.ErrCode);
    }

    [Fact]
    public async Task Password_auth_without_a_session_completes_in_one_request()
    {
        var alice = await MatrixTestClient.RegisterAsync(fixture.B);
        var other = await MatrixTestClient.LoginAsync(fixture.B, alice.UserId, alice.Password);
        (await alice.DeleteAsync($"{Devices}/{other.DeviceId}", new JsonObject { ["auth"] = PasswordAuth(alice, null) })).EnsureSuccess();
        Assert.Equal(401, (await other.GetAsync(WhoAmI)).StatusCode);
    }
}

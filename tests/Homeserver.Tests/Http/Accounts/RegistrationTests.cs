using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.Accounts;

[Collection(AccountsCollection.Name)]
public sealed class RegistrationTests(AccountsCluster fixture)
{
    private const string Register = "/_matrix/client/v3/register";
    private const string WhoAmI = "/_matrix/client/v3/account/whoami";

    private static JsonObject Body(string? username, string? password = MatrixTestClient.DefaultPassword, JsonObject? auth = null)
    {
        var body = new JsonObject();
        if (username is not null) body["username"] = username;
        if (password is not null) body["password"] = password;
        if (auth is not null) body["auth"] = auth;
        return body;
    }

    private static JsonObject Dummy(string? session = null)
    {
        var auth = new JsonObject { ["type"] = "m.login.dummy" };
        if (session is not null) auth["session"] = session;
        return auth;
    }

    [Fact]
    public async Task Without_auth_the_server_answers_the_dummy_flow_then_accepts_the_session()
    {
        var localpart = MatrixTestClient.UniqueLocalpart("uia");
        var challenge = await fixture.A.Http.PostJsonAsync(Register, Body(localpart));
        Assert.Equal(401, challenge.StatusCode);
        Assert.Equal("m.login.dummy", challenge["flows"][0]!["stages"]![0]!.GetValue<string>());
        Assert.NotNull(challenge["params"].AsObject());
        var session = challenge["session"].GetValue<string>();
        Assert.False(string.IsNullOrEmpty(session));
        Assert.Null(challenge.Body!["errcode"]);

        // The answer may reach another silo: sessions live in the database.
        var done = (await fixture.B.Http.PostJsonAsync(Register, Body(localpart, auth: Dummy(session)))).EnsureSuccess();
        Assert.Equal($"@{localpart}:localhost", done["user_id"].GetValue<string>());
        var me = (await fixture.A.Http.GetJsonAsync(WhoAmI, done["access_token"].GetValue<string>())).EnsureSuccess();
        Assert.Equal(done["device_id"].GetValue<string>(), me["device_id"].GetValue<string>());

        // Re-submitting the completed session repeats its answer: the same user, in a new session.
        var again = (await fixture.A.Http.PostJsonAsync(Register, Body(localpart, auth: Dummy(session)))).EnsureSuccess();
        Assert.Equal(done["user_id"].GetValue<string>(), again["user_id"].GetValue<string>());
        Assert.NotEqual(done["access_token"].GetValue<string>(), again["access_token"].GetValue<string>());
        (await fixture.B.Http.GetJsonAsync(WhoAmI, again["access_token"].GetValue<string>())).EnsureSuccess();

        Assert.Equal(400, (await fixture.A.Http.PostJsonAsync(Register, Body(MatrixTestClient.UniqueLocalpart(), auth: Dummy("no-such-session")))).StatusCode);
    }

    [Fact]
    public async Task A_session_remembers_the_first_requests_parameters_without_storing_the_password()
    {
        var localpart = MatrixTestClient.UniqueLocalpart("remember");
        var first = new JsonObject
        {
            ["username"] = localpart, ["password"] = "übers3kr1t-pässword", ["device_id"] = "XYZZY",
            ["initial_device_display_name"] = "display name",
        };
        var challenge = await fixture.A.Http.PostJsonAsync(Register, first);
        Assert.Equal(401, challenge.StatusCode);
        var session = challenge["session"].GetValue<string>();
        await using (var cmd = fixture.Cluster.Database.CreateCommand("SELECT params::text FROM uia_sessions WHERE session_id = $1"))
        {
            cmd.Parameters.AddWithValue(session);
            var stored = (string)(await cmd.ExecuteScalarAsync())!;
            Assert.Contains(localpart, stored);
            Assert.DoesNotContain("s3kr1t", stored);
        }

        // The next stage sends only `auth`, on the other silo.
        var done = (await fixture.B.Http.PostJsonAsync(Register, new JsonObject { ["auth"] = Dummy(session) })).EnsureSuccess();
        Assert.Equal($"@{localpart}:localhost", done["user_id"].GetValue<string>());
        Assert.Equal("XYZZY", done["device_id"].GetValue<string>());
        var alice = await MatrixTestClient.LoginAsync(fixture.A, localpart, "übers3kr1t-pässword");
        var device = (await alice.GetAsync($"/_matrix/client/v3/devices/XYZZY")).EnsureSuccess();
        Assert.Equal("display name", device["display_name"].GetValue<string>());

        // A client cannot hand the server a password hash of its own.
        var forged = await fixture.A.Http.PostJsonAsync(Register, new JsonObject
        {
            ["username"] = MatrixTestClient.UniqueLocalpart("forged"), ["org.homeserver.password_hash"] = "$2a$04$abc", ["auth"] = Dummy(),
        });
        Assert.Equal(400, forged.StatusCode);
        Assert.Equal("M_MISSING_PARAM", forged.ErrCode);
    }

    [Fact]
    public async Task Dummy_auth_without_a_session_registers_in_one_request()
    {
        var localpart = MatrixTestClient.UniqueLocalpart("one");
        var r = (await fixture.A.Http.PostJsonAsync(Register, Body(localpart, auth: Dummy()))).EnsureSuccess();
        Assert.Equal($"@{localpart}:localhost", r["user_id"].GetValue<string>());
        Assert.StartsWith("hs_", r["access_token"].GetValue<string>());
        Assert.Equal("localhost", r["home_server"].GetValue<string>());
    }

    [Fact]
    public async Task A_taken_name_is_M_USER_IN_USE_even_before_authenticating()
    {
        var alice = await MatrixTestClient.RegisterAsync(fixture.A);
        var localpart = alice.UserId[1..alice.UserId.IndexOf(':')];
        foreach (var silo in fixture.Cluster.Silos)
        {
            var withAuth = await silo.Http.PostJsonAsync(Register, Body(localpart, auth: Dummy()));
            Assert.Equal(400, withAuth.StatusCode);
            Assert.Equal("M_USER_IN_USE", withAuth.ErrCode);
            var withoutAuth = await silo.Http.PostJsonAsync(Register, Body(localpart));
            Assert.Equal("M_USER_IN_USE", withoutAuth.ErrCode);
        }
    }

    [Fact]
    public async Task Concurrent_registrations_of_one_name_have_exactly_one_winner()
    {
        var localpart = MatrixTestClient.UniqueLocalpart("race");
        var attempts = Enumerable.Range(0, 8).Select(i =>
            fixture.Cluster.Silos[i % 2].Http.PostJsonAsync(Register, Body(localpart, auth: Dummy())));
        var results = await Task.WhenAll(attempts);
        Assert.Single(results, r => r.StatusCode == 200);
        Assert.All(results.Where(r => r.StatusCode != 200), r => Assert.Equal("M_USER_IN_USE", r.ErrCode));
        await using var cmd = fixture.Cluster.Database.CreateCommand("SELECT count(*) FROM users WHERE user_id = $1");
        cmd.Parameters.AddWithValue($"@{localpart}:localhost");
        Assert.Equal(1L, (long)(await cmd.ExecuteScalarAsync())!);
    }

    [Fact]
    public async Task Capitals_in_a_requested_username_are_taken_in_lower_case()
    {
        var localpart = "Cap" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        var r = (await fixture.A.Http.PostJsonAsync(Register, Body(localpart, auth: Dummy()))).EnsureSuccess();
        Assert.Equal($"@{localpart.ToLowerInvariant()}:localhost", r["user_id"].GetValue<string>());
        var again = await fixture.B.Http.PostJsonAsync(Register, Body(localpart.ToLowerInvariant(), auth: Dummy()));
        Assert.Equal("M_USER_IN_USE", again.ErrCode);
    }

    [Theory]
    [InlineData("al ice")]
    [InlineData("alice:localhost")]
    [InlineData("@alice")]
    [InlineData("ali\u00e9ce")]
    [InlineData("")]
    public async Task Names_outside_the_localpart_grammar_are_M_INVALID_USERNAME(string localpart)
    {
        var r = await fixture.A.Http.PostJsonAsync(Register, Body(localpart, auth: Dummy()));
        Assert.Equal(400, r.StatusCode);
        Assert.Equal("M_INVALID_USERNAME", r.ErrCode);
    }

    [Fact]
    public async Task Every_grammar_character_is_accepted_and_overlong_ids_are_not()
    {
        var localpart = "a.b_c=d-e/f+g9" + Guid.NewGuid().ToString("N")[..6];
        var r = (await fixture.A.Http.PostJsonAsync(Register, Body(localpart, auth: Dummy()))).EnsureSuccess();
        Assert.Equal($"@{localpart}:localhost", r["user_id"].GetValue<string>());

        var tooLong = await fixture.A.Http.PostJsonAsync(Register, Body(new string('a', 250), auth: Dummy()));
        Assert.Equal("M_INVALID_USERNAME", tooLong.ErrCode);
    }

    [Fact]
    public async Task Availability_check_reports_free_taken_and_invalid_names()
    {
        var free = (await fixture.A.Http.GetJsonAsync($"{Register}/available?username={MatrixTestClient.UniqueLocalpart()}")).EnsureSuccess();
        Assert.True(free["available"].GetValue<bool>());

        var alice = await MatrixTestClient.RegisterAsync(fixture.A);
        var taken = await fixture.B.Http.GetJsonAsync($"{Register}/available?username={alice.UserId[1..alice.UserId.IndexOf(':')]}");
        Assert.Equal(400, taken.StatusCode);
        Assert.Equal("M_USER_IN_USE", taken.ErrCode);

        var invalid = await fixture.B.Http.GetJsonAsync($"{Register}/available?username=no%20pe");
        Assert.Equal("M_INVALID_USERNAME", invalid.ErrCode);
    }

    [Fact]
    public async Task Inhibit_login_returns_only_the_user_id()
    {
        var body = Body(MatrixTestClient.UniqueLocalpart("inhibit"), auth: Dummy());
        body["inhibit_login"] = true;
        var r = (await fixture.A.Http.PostJsonAsync(Register, body)).EnsureSuccess();
        Assert.NotNull(r.Body!["user_id"]);
        Assert.Null(r.Body["access_token"]);
        Assert.Null(r.Body["device_id"]);
        // The account exists and can log in.
        await MatrixTestClient.LoginAsync(fixture.B, r["user_id"].GetValue<string>());
    }

    [Fact]
    public async Task Omitted_username_is_generated()
    {
        var r = (await fixture.A.Http.PostJsonAsync(Register, Body(null, auth: Dummy()))).EnsureSuccess();
        var userId = r["user_id"].GetValue<string>();
        Assert.Matches("^@[a-z0-9]+:localhost$", userId);
        var me = (await fixture.B.Http.GetJsonAsync(WhoAmI, r["access_token"].GetValue<string>())).EnsureSuccess();
        Assert.Equal(userId, me["user_id"].GetValue<string>());
    }

    [Fact]
    public async Task Password_is_required_and_must_be_a_string()
    {
        var missing = await fixture.A.Http.PostJsonAsync(Register, Body(MatrixTestClient.UniqueLocalpart(), password: null, auth: Dummy()));
        Assert.Equal(400, missing.StatusCode);
        Assert.Equal("M_MISSING_PARAM", missing.ErrCode);

        var wrongType = await fixture.A.Http.PostJsonAsync(Register,
            new { username = MatrixTestClient.UniqueLocalpart(), password = 42, auth = new { type = "m.login.dummy" } });
        Assert.Equal(400, wrongType.StatusCode);
        Assert.Equal("M_BAD_JSON", wrongType.ErrCode);
    }

    [Fact]
    public async Task Requested_device_id_and_display_name_are_used()
    {
        var body = Body(MatrixTestClient.UniqueLocalpart(), auth: Dummy());
        body["device_id"] = "MYDEVICE";
        body["initial_device_display_name"] = "Test phone";
        var r = (await fixture.A.Http.PostJsonAsync(Register, body)).EnsureSuccess();
        Assert.Equal("MYDEVICE", r["device_id"].GetValue<string>());
        var device = (await fixture.B.Http.GetJsonAsync("/_matrix/client/v3/devices/MYDEVICE", r["access_token"].GetValue<string>())).EnsureSuccess();
        Assert.Equal("Test phone", device["display_name"].GetValue<string>());
    }

    [Fact]
    public async Task Malformed_bodies_and_auth_are_rejected()
    {
        var notJson = await fixture.A.Http.PostJsonAsync(Register, "{\"username\":");
        Assert.Equal(400, notJson.StatusCode);
        Assert.Equal("M_NOT_JSON", notJson.ErrCode);

        var notObject = await fixture.A.Http.PostJsonAsync(Register, "\"alice\"");
        Assert.Equal("M_BAD_JSON", notObject.ErrCode);

        var authNotObject = await fixture.A.Http.PostJsonAsync(Register, new { username = MatrixTestClient.UniqueLocalpart(), password = "x", auth = "dummy" });
        Assert.Equal("M_BAD_JSON", authNotObject.ErrCode);

        var unknownSession = await fixture.A.Http.PostJsonAsync(Register, Body(MatrixTestClient.UniqueLocalpart(), auth: Dummy("no-such-session")));
        Assert.Equal(400, unknownSession.StatusCode);

        var wrongStage = await fixture.A.Http.PostJsonAsync(Register,
            Body(MatrixTestClient.UniqueLocalpart(), auth: new JsonObject { ["type"] = "m.login.recaptcha" }));
        Assert.Equal(400, wrongStage.StatusCode);
    }

    [Fact]
    public async Task Guest_registration_is_refused_when_guest_access_is_off()
    {
        var r = await fixture.A.Http.PostJsonAsync($"{Register}?kind=guest", new JsonObject());
        Assert.Equal(403, r.StatusCode);
        Assert.Equal("M_GUEST_ACCESS_FORBIDDEN", r.ErrCode);
    }

    [Fact]
    public async Task Stored_tokens_and_passwords_are_hashes()
    {
        var alice = await MatrixTestClient.RegisterAsync(fixture.A);
        await using var cmd = fixture.Cluster.Database.CreateCommand(
            "SELECT u.password_hash, t.token_hash FROM users u JOIN access_tokens t USING (user_id) WHERE user_id = $1");
        cmd.Parameters.AddWithValue(alice.UserId);
        await using var reader = await cmd.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        Assert.StartsWith("$2", reader.GetString(0));
        Assert.DoesNotContain(alice.Password, reader.GetString(0));
        var stored = (byte[])reader[1];
        Assert.Equal(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(alice.AccessToken)), stored);
    }
}

/// <summary>A homeserver with registration off and guest access on.</summary>
public sealed class ClosedRegistrationTests : IAsyncLifetime
{
    private HomeserverTestCluster _cluster = null!;

    public async Task InitializeAsync() => _cluster = await HomeserverTestCluster.StartAsync(silos: 2, new Dictionary<string, string?>
    {
        ["Homeserver:EnableRegistration"] = "false",
        ["Homeserver:EnableGuestAccess"] = "true",
    });

    public async Task DisposeAsync() => await _cluster.DisposeAsync();

    [Fact]
    public async Task User_registration_is_forbidden_but_guests_may_register()
    {
        var user = await _cluster.Silos[0].Http.PostJsonAsync("/_matrix/client/v3/register",
            new { username = "someone", password = "pw", auth = new { type = "m.login.dummy" } });
        Assert.Equal(403, user.StatusCode);
        Assert.Equal("M_FORBIDDEN", user.ErrCode);

        var available = await _cluster.Silos[1].Http.GetJsonAsync("/_matrix/client/v3/register/available?username=someone");
        Assert.Equal(403, available.StatusCode);

        var guest = (await _cluster.Silos[1].Http.PostJsonAsync("/_matrix/client/v3/register?kind=guest", new JsonObject())).EnsureSuccess();
        var me = (await _cluster.Silos[0].Http.GetJsonAsync("/_matrix/client/v3/account/whoami", guest["access_token"].GetValue<string>()))
            .EnsureSuccess();
        Assert.True(me["is_guest"].GetValue<bool>());
        Assert.Equal(guest["user_id"].GetValue<string>(), me["user_id"].GetValue<string>());
    }
}

using System.Text.Json.Nodes;
using Homeserver.Accounts;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.Admin;

/// <summary>
/// Shared-secret registration (Synapse's <c>GET/POST /_synapse/admin/v1/register</c>, docs/admin_api/register_api.md):
/// the HMAC as documented, nonces good once, within their lifetime and on any front end, Synapse's errors, and the
/// endpoint off without a secret.
/// </summary>
public sealed class SharedSecretRegistrationTests(SynapseAdminCluster fixture) : IClassFixture<SynapseAdminCluster>
{
    private const string RegisterPath = SynapseAdminCluster.RegisterPath;
    private const string Password = "a password";

    [Fact]
    public void The_mac_is_the_one_Synapses_register_new_matrix_user_computes()
    {
        // Computed with Python's hmac module exactly as synapse/_scripts/register_new_matrix_user.py does.
        Assert.Equal("a404797cd9f7c1074b3c98088e00e33f6536237f",
            SharedSecretRegistration.Mac("the shared secret", "abcdef0123", "alice", "pässword", admin: true, userType: null));
        Assert.Equal("e5f03f806480e4d781e6dbcb085b1df05972a89a",
            SharedSecretRegistration.Mac("the shared secret", "abcdef0123", "bot1", "pw", admin: false, userType: "bot"));
    }

    [Fact]
    public async Task An_admin_registered_with_the_shared_secret_logs_in_and_may_call_the_admin_api()
    {
        var localpart = MatrixTestClient.UniqueLocalpart("ssadmin");
        var registered = (await SynapseAdminCluster.RegisterAsync(fixture.A, localpart, Password, admin: true,
            displayName: "The Admin")).EnsureSuccess();

        var userId = $"@{localpart}:localhost";
        Assert.Equal(userId, registered["user_id"].GetValue<string>());
        Assert.Equal("localhost", registered["home_server"].GetValue<string>());
        Assert.False(string.IsNullOrEmpty(registered["device_id"].GetValue<string>()));
        // The answered token works at once, through the other silo too.
        var whoami = await fixture.B.Http.GetJsonAsync("/_matrix/client/v3/account/whoami", registered["access_token"].GetValue<string>());
        Assert.Equal(userId, whoami.EnsureSuccess()["user_id"].GetValue<string>());

        var admin = await MatrixTestClient.LoginAsync(fixture.B, localpart, Password);
        var user = (await admin.GetAsync($"/_synapse/admin/v2/users/{MatrixTestClient.Escape(userId)}")).EnsureSuccess();
        Assert.True(user["admin"].GetValue<bool>());
        Assert.Equal("The Admin", user["displayname"].GetValue<string>());
    }

    [Fact]
    public async Task A_regular_user_with_a_user_type_is_no_admin()
    {
        var localpart = MatrixTestClient.UniqueLocalpart("ssbot");
        (await SynapseAdminCluster.RegisterAsync(fixture.A, localpart, Password, admin: false, userType: "bot")).EnsureSuccess();
        var bot = await MatrixTestClient.LoginAsync(fixture.A, localpart, Password);
        Assert.Equal(403, (await bot.GetAsync("/_synapse/admin/v2/users")).StatusCode);

        var admin = await fixture.AdminAsync();
        var user = (await admin.GetAsync($"/_synapse/admin/v2/users/{MatrixTestClient.Escape(bot.UserId)}")).EnsureSuccess();
        Assert.False(user["admin"].GetValue<bool>());
        Assert.Equal("bot", user["user_type"].GetValue<string>());
    }

    [Fact]
    public async Task A_nonce_issued_by_one_front_end_is_accepted_by_another_once()
    {
        var nonce = await SynapseAdminCluster.NonceAsync(fixture.A);
        var localpart = MatrixTestClient.UniqueLocalpart("ssnonce");
        var body = Body(nonce, localpart, Password, admin: false);

        (await fixture.B.Http.PostJsonAsync(RegisterPath, body)).EnsureSuccess();

        var again = Body(nonce, MatrixTestClient.UniqueLocalpart("ssnonce"), Password, admin: false);
        var reused = await fixture.A.Http.PostJsonAsync(RegisterPath, again);
        AssertError(reused, 400, "M_UNKNOWN", "unrecognised nonce");
    }

    [Fact]
    public async Task A_wrong_mac_is_refused_and_uses_up_the_nonce()
    {
        var nonce = await SynapseAdminCluster.NonceAsync(fixture.A);
        var localpart = MatrixTestClient.UniqueLocalpart("ssmac");
        var forged = Body(nonce, localpart, Password, admin: false);
        // The mac of a regular user does not make an admin.
        forged["admin"] = true;
        AssertError(await fixture.A.Http.PostJsonAsync(RegisterPath, forged), 403, "M_UNKNOWN", "HMAC incorrect");

        var wrongSecret = await SynapseAdminCluster.NonceAsync(fixture.A);
        var body = Body(wrongSecret, localpart, Password, admin: false);
        body["mac"] = SynapseAdminCluster.Mac(wrongSecret, localpart, Password, admin: false, secret: "not the secret");
        AssertError(await fixture.A.Http.PostJsonAsync(RegisterPath, body), 403, "M_UNKNOWN", "HMAC incorrect");

        AssertError(await fixture.A.Http.PostJsonAsync(RegisterPath, Body(nonce, localpart, Password, admin: false)),
            400, "M_UNKNOWN", "unrecognised nonce");
        Assert.Equal(403, (await fixture.A.Http.PostJsonAsync("/_matrix/client/v3/login", new JsonObject
        {
            ["type"] = "m.login.password", ["identifier"] = new JsonObject { ["type"] = "m.id.user", ["user"] = localpart },
            ["password"] = Password,
        })).StatusCode);
    }

    [Fact]
    public async Task An_expired_or_unknown_nonce_is_refused()
    {
        var nonce = await SynapseAdminCluster.NonceAsync(fixture.A);
        await using (var age = fixture.Cluster.Database.CreateCommand(
            "UPDATE registration_nonces SET created_at = now() - interval '61 seconds' WHERE nonce = $1"))
        {
            age.Parameters.AddWithValue(nonce);
            Assert.Equal(1, await age.ExecuteNonQueryAsync());
        }
        var localpart = MatrixTestClient.UniqueLocalpart("ssold");
        AssertError(await fixture.A.Http.PostJsonAsync(RegisterPath, Body(nonce, localpart, Password, admin: false)),
            400, "M_UNKNOWN", "unrecognised nonce");
        AssertError(await fixture.A.Http.PostJsonAsync(RegisterPath, Body("made-up", localpart, Password, admin: false)),
            400, "M_UNKNOWN", "unrecognised nonce");
    }

    [Fact]
    public async Task A_taken_or_invalid_name_gets_synapses_errors()
    {
        var taken = await fixture.UserAsync("sstaken");
        var localpart = taken.UserId[1..taken.UserId.IndexOf(':')];
        var inUse = await SynapseAdminCluster.RegisterAsync(fixture.A, localpart, Password, admin: false);
        AssertError(inUse, 400, "M_USER_IN_USE", null);

        var invalid = await SynapseAdminCluster.RegisterAsync(fixture.A, "not valid!", Password, admin: false);
        AssertError(invalid, 400, "M_INVALID_USERNAME", null);
    }

    [Fact]
    public async Task Malformed_requests_get_synapses_errors()
    {
        AssertError(await fixture.A.Http.PostJsonAsync(RegisterPath, new JsonObject()), 400, "M_BAD_JSON", "nonce must be specified");

        var nonce = await SynapseAdminCluster.NonceAsync(fixture.A);
        AssertError(await fixture.A.Http.PostJsonAsync(RegisterPath, new JsonObject { ["nonce"] = nonce }),
            400, "M_BAD_JSON", "username must be specified");

        nonce = await SynapseAdminCluster.NonceAsync(fixture.A);
        AssertError(await fixture.A.Http.PostJsonAsync(RegisterPath, new JsonObject { ["nonce"] = nonce, ["username"] = new string('a', 513) }),
            400, "M_UNKNOWN", "Invalid username");

        nonce = await SynapseAdminCluster.NonceAsync(fixture.A);
        AssertError(await fixture.A.Http.PostJsonAsync(RegisterPath, new JsonObject
        {
            ["nonce"] = nonce, ["username"] = "someone", ["password"] = Password,
        }), 400, "M_BAD_JSON", "mac must be specified");

        nonce = await SynapseAdminCluster.NonceAsync(fixture.A);
        var badType = Body(nonce, "someone", Password, admin: false);
        badType["user_type"] = "robot";
        AssertError(await fixture.A.Http.PostJsonAsync(RegisterPath, badType), 400, "M_UNKNOWN", "Invalid user type");
    }

    [Fact]
    public async Task Without_a_shared_secret_the_endpoint_is_off()
    {
        await using var cluster = await HomeserverTestCluster.StartAsync(silos: 1);
        var silo = cluster.Silos[0];
        AssertError(await silo.Http.GetJsonAsync(RegisterPath), 400, "M_UNKNOWN", "Shared secret registration is not enabled");
        AssertError(await silo.Http.PostJsonAsync(RegisterPath, Body("any", "someone", Password, admin: true)),
            400, "M_UNKNOWN", "Shared secret registration is not enabled");
    }

    private static JsonObject Body(string nonce, string user, string password, bool admin) => new()
    {
        ["nonce"] = nonce, ["username"] = user, ["password"] = password, ["admin"] = admin,
        ["mac"] = SynapseAdminCluster.Mac(nonce, user, password, admin),
    };

    private static void AssertError(MatrixResponse response, int status, string errcode, string? error)
    {
        Assert.True(response.StatusCode == status, $"expected {status}, got {response.StatusCode}: {response.Text}");
        Assert.Equal(errcode, response.ErrCode);
        if (error is not null) Assert.Equal(error, response["error"].GetValue<string>());
    }
}

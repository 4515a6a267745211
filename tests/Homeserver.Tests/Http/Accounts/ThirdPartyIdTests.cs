using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.Accounts;

/// <summary>The 3PID endpoints on a server that verifies no email or phone and trusts no identity server.</summary>
[Collection(AccountsCollection.Name)]
public sealed class ThirdPartyIdTests(AccountsCluster fixture)
{
    [Fact]
    public async Task No_identifier_can_be_validated_added_or_bound_and_none_is_listed()
    {
        var alice = await MatrixTestClient.RegisterAsync(fixture.A);
        Assert.Empty((await alice.GetAsync($"{V3}/account/3pid")).EnsureSuccess()["threepids"].AsArray());

        var request = new JsonObject { ["client_secret"] = "secret", ["email"] = "alice@example.org", ["send_attempt"] = 1 };
        foreach (var path in new[] { "/account/3pid/email/requestToken", "/register/email/requestToken", "/account/password/email/requestToken",
                     "/account/3pid/msisdn/requestToken" })
            AssertError(await alice.PostAsync($"{V3}{path}", request), 400, "M_THREEPID_MEDIUM_NOT_SUPPORTED");
        AssertError(await alice.PostAsync($"{V3}/account/3pid/email/requestToken", new JsonObject()), 400, "M_MISSING_PARAM");

        AssertError(await alice.PostAsync($"{V3}/account/3pid/add", new JsonObject { ["client_secret"] = "s", ["sid"] = "1" }), 400, "M_THREEPID_AUTH_FAILED");
        AssertError(await alice.PostAsync($"{V3}/account/3pid", new JsonObject { ["three_pid_creds"] = new JsonObject() }), 400, "M_THREEPID_AUTH_FAILED");
        AssertError(await alice.PostAsync($"{V3}/account/3pid/bind",
            new JsonObject { ["client_secret"] = "s", ["sid"] = "1", ["id_server"] = "id.example.org", ["id_access_token"] = "t" }), 400, "M_SERVER_NOT_TRUSTED");

        var gone = (await alice.PostAsync($"{V3}/account/3pid/delete", new JsonObject { ["medium"] = "email", ["address"] = "alice@example.org" })).EnsureSuccess();
        Assert.Equal("no-support", gone["id_server_unbind_result"].GetValue<string>());
        (await alice.PostAsync($"{V3}/account/3pid/unbind", new JsonObject { ["medium"] = "email", ["address"] = "alice@example.org" })).EnsureSuccess();
        AssertError(await alice.PostAsync($"{V3}/account/3pid/delete", new JsonObject { ["medium"] = "pigeon", ["address"] = "x" }), 400, "M_INVALID_PARAM");
        Assert.Equal(401, (await fixture.A.Http.PostJsonAsync($"{V3}/account/3pid/add", new JsonObject())).StatusCode);
    }
}

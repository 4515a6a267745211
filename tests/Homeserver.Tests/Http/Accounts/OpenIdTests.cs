using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.Accounts;

[Collection(AccountsCollection.Name)]
public sealed class OpenIdTests(AccountsCluster fixture)
{
    private const string UserInfo = "/_matrix/federation/v1/openid/userinfo";

    [Fact]
    public async Task A_token_issued_on_one_silo_is_exchanged_for_the_user_on_the_other()
    {
        var alice = await MatrixTestClient.RegisterAsync(fixture.A);
        var issued = (await alice.PostAsync($"{V3}/user/{E(alice.UserId)}/openid/request_token", new JsonObject())).EnsureSuccess();
        Assert.Equal("localhost", issued["matrix_server_name"].GetValue<string>());
        Assert.Equal("Bearer", issued["token_type"].GetValue<string>());
        Assert.True(issued["expires_in"].GetValue<int>() > 0);
        var token = issued["access_token"].GetValue<string>();

        var info = (await fixture.B.Http.GetJsonAsync($"{UserInfo}?access_token={Uri.EscapeDataString(token)}")).EnsureSuccess();
        Assert.Equal(alice.UserId, info["sub"].GetValue<string>());

        // The OpenID token is no access token, nor the other way round.
        Assert.Equal(401, (await fixture.A.Http.GetJsonAsync($"{V3}/account/whoami", token)).StatusCode);
        AssertError(await fixture.A.Http.GetJsonAsync($"{UserInfo}?access_token={Uri.EscapeDataString(alice.AccessToken)}"), 401, "M_UNKNOWN_TOKEN");
        AssertError(await fixture.A.Http.GetJsonAsync($"{UserInfo}?access_token=an/invalid/token"), 401, "M_UNKNOWN_TOKEN");
        AssertError(await fixture.A.Http.GetJsonAsync(UserInfo), 401, "M_MISSING_TOKEN");

        var bob = await MatrixTestClient.RegisterAsync(fixture.A);
        AssertError(await bob.PostAsync($"{V3}/user/{E(alice.UserId)}/openid/request_token", new JsonObject()), 403, "M_FORBIDDEN");
    }
}

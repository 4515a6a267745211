using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.Accounts;

[Collection(AccountsCollection.Name)]
public sealed class ClientInfoTests(AccountsCluster fixture)
{
    [Fact]
    public async Task Versions_lists_the_r0_releases_and_v1_1_to_v1_11_without_auth()
    {
        var r = (await fixture.B.Http.GetJsonAsync("/_matrix/client/versions")).EnsureSuccess();
        var versions = r["versions"].AsArray().Select(v => v!.GetValue<string>()).ToList();
        string[] r0 = ["r0.0.1", "r0.1.0", "r0.2.0", "r0.3.0", "r0.4.0", "r0.5.0", "r0.6.0", "r0.6.1"];
        Assert.Equal(r0.Concat(Enumerable.Range(1, 11).Select(i => $"v1.{i}")), versions);
        Assert.Empty(r["unstable_features"].AsObject());
    }

    [Fact]
    public async Task Capabilities_need_auth_and_describe_the_server()
    {
        var anonymous = await fixture.A.Http.GetJsonAsync("/_matrix/client/v3/capabilities");
        Assert.Equal(401, anonymous.StatusCode);
        Assert.Equal("M_MISSING_TOKEN", anonymous.ErrCode);

        var alice = await MatrixTestClient.RegisterAsync(fixture.A);
        var caps = (await alice.On(fixture.B).GetAsync("/_matrix/client/v3/capabilities")).EnsureSuccess()["capabilities"];
        Assert.True(caps["m.change_password"]!["enabled"]!.GetValue<bool>());
        Assert.True(caps["m.set_displayname"]!["enabled"]!.GetValue<bool>());
        Assert.True(caps["m.set_avatar_url"]!["enabled"]!.GetValue<bool>());
        Assert.False(caps["m.3pid_changes"]!["enabled"]!.GetValue<bool>());
        Assert.Equal("10", caps["m.room_versions"]!["default"]!.GetValue<string>());
        var available = caps["m.room_versions"]!["available"]!.AsObject();
        Assert.Equal(Enumerable.Range(1, 11).Select(i => i.ToString()), available.Select(kv => kv.Key));
        Assert.All(available, kv => Assert.Equal("stable", kv.Value!.GetValue<string>()));
    }

    [Fact]
    public async Task Third_party_ids_are_an_empty_list()
    {
        var alice = await MatrixTestClient.RegisterAsync(fixture.A);
        var r = (await alice.GetAsync("/_matrix/client/v3/account/3pid")).EnsureSuccess();
        Assert.Empty(r["threepids"].AsArray());
    }
}

using System.Text.Json.Nodes;
using Homeserver.Accounts;
using Homeserver.Caches;
using Homeserver.Streams;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.Accounts;

/// <summary>Logout, logout/all, password change and the cross-silo revocation of tokens.</summary>
[Collection(AccountsCollection.Name)]
public sealed class SessionTests(AccountsCluster fixture)
{
    private const string WhoAmI = "/_matrix/client/v3/account/whoami";

    private static async Task AssertRejectedAsync(MatrixTestClient client)
    {
        var r = await client.GetAsync(WhoAmI);
        Assert.Equal(401, r.StatusCode);
        Assert.Equal("M_UNKNOWN_TOKEN", r.ErrCode);
    }

    [Fact]
    public async Task Logout_through_A_revokes_a_token_cached_on_B_once_B_reaches_the_logout()
    {
        var alice = await MatrixTestClient.RegisterAsync(fixture.A);
        var onB = alice.On(fixture.B);
        (await onB.GetAsync(WhoAmI)).EnsureSuccess();
        var cache = fixture.B.Get<CacheRegistry>().Get<Requester>(AccountRows.TokenCache);
        var key = AccessTokens.CacheKey(AccessTokens.Hash(alice.AccessToken));
        Assert.True(cache.TryGet(key, out _), "B should have cached the token after authenticating it");

        var before = fixture.A.Get<StreamNotifier>().Current.Get(StreamNames.Caches, 0);
        (await alice.PostAsync("/_matrix/client/v3/logout")).EnsureSuccess();
        // The logout answered only after A's own reader applied it, so A's position now covers the revocation.
        var logoutPosition = fixture.A.Get<StreamNotifier>().Current.Get(StreamNames.Caches, 0);
        Assert.True(logoutPosition > before);
        await AssertRejectedAsync(alice);

        Assert.True(await fixture.B.Get<StreamNotifier>().WaitForTokenAsync(
            StreamToken.Zero.Advance(StreamNames.Caches, 0, logoutPosition), TimeSpan.FromSeconds(10)));
        Assert.False(cache.TryGet(key, out _), "B's reader passed the logout but kept the token cached");
        await AssertRejectedAsync(onB);
    }

    [Fact]
    public async Task Logout_deletes_only_the_current_device()
    {
        var phone = await MatrixTestClient.RegisterAsync(fixture.A);
        var laptop = await MatrixTestClient.LoginAsync(fixture.B, phone.UserId, phone.Password);
        (await phone.On(fixture.B).GetAsync(WhoAmI)).EnsureSuccess();

        (await phone.On(fixture.B).PostAsync("/_matrix/client/v3/logout")).EnsureSuccess();
        await AssertRejectedAsync(phone.On(fixture.B));
        await CrossSilo.WaitForAsync(fixture.B, fixture.A);
        await AssertRejectedAsync(phone);

        (await laptop.GetAsync(WhoAmI)).EnsureSuccess();
        var devices = (await laptop.On(fixture.A).GetAsync("/_matrix/client/v3/devices")).EnsureSuccess();
        Assert.Equal([laptop.DeviceId], devices["devices"].AsArray().Select(d => d!["device_id"]!.GetValue<string>()));
    }

    [Fact]
    public async Task Logout_all_revokes_every_device_on_every_silo()
    {
        var first = await MatrixTestClient.RegisterAsync(fixture.A);
        var second = await MatrixTestClient.LoginAsync(fixture.B, first.UserId, first.Password);
        var third = await MatrixTestClient.LoginAsync(fixture.A, first.UserId, first.Password);
        foreach (var c in new[] { first, second, third })
        {
            (await c.GetAsync(WhoAmI)).EnsureSuccess();
            (await c.On(c.Silo == fixture.A ? fixture.B : fixture.A).GetAsync(WhoAmI)).EnsureSuccess();
        }

        (await second.PostAsync("/_matrix/client/v3/logout/all")).EnsureSuccess();
        await CrossSilo.WaitForAsync(fixture.B, fixture.A);
        foreach (var c in new[] { first, second, third })
        {
            await AssertRejectedAsync(c.On(fixture.A));
            await AssertRejectedAsync(c.On(fixture.B));
        }
        // The password still works.
        await MatrixTestClient.LoginAsync(fixture.A, first.UserId, first.Password);
    }

    [Fact]
    public async Task Logout_requires_a_valid_token()
    {
        var missing = await fixture.A.Http.PostJsonAsync("/_matrix/client/v3/logout", null);
        Assert.Equal("M_MISSING_TOKEN", missing.ErrCode);
        var unknown = await fixture.B.Http.PostJsonAsync("/_matrix/client/v3/logout/all", null, "hs_bogus");
        Assert.Equal(401, unknown.StatusCode);
        Assert.Equal("M_UNKNOWN_TOKEN", unknown.ErrCode);
    }

    [Fact]
    public async Task A_cache_miss_reads_the_database_so_a_revoked_token_is_never_loaded()
    {
        var alice = await MatrixTestClient.RegisterAsync(fixture.A);
        (await alice.PostAsync("/_matrix/client/v3/logout")).EnsureSuccess();
        // B never cached the token; it must not accept it even before its reader sees the logout.
        await AssertRejectedAsync(alice.On(fixture.B));
    }

    [Fact]
    public async Task Change_password_needs_the_old_one_and_logs_out_other_devices()
    {
        var phone = await MatrixTestClient.RegisterAsync(fixture.A);
        var laptop = await MatrixTestClient.LoginAsync(fixture.B, phone.UserId, phone.Password);
        (await laptop.On(fixture.A).GetAsync(WhoAmI)).EnsureSuccess();
        const string path = "/_matrix/client/v3/account/password";

        var challenge = await phone.PostAsync(path, new { new_password = "new secret" });
        Assert.Equal(401, challenge.StatusCode);
        Assert.Equal("m.login.password", challenge["flows"][0]!["stages"]![0]!.GetValue<string>());
        var session = challenge["session"].GetValue<string>();

        var wrong = await phone.PostAsync(path, new JsonObject
        {
            ["new_password"] = "new secret",
            ["auth"] = new JsonObject { ["type"] = "m.login.password", ["user"] = phone.UserId, ["password"] = "wrong", ["session"] = session },
        });
        Assert.Equal(401, wrong.StatusCode);
        Assert.Equal("M_FORBIDDEN", wrong.ErrCode);
        Assert.NotNull(wrong.Body!["flows"]);

        (await phone.PostAsync(path, new JsonObject
        {
            ["new_password"] = "new secret",
            ["auth"] = new JsonObject
            {
                ["type"] = "m.login.password",
                ["identifier"] = new JsonObject { ["type"] = "m.id.user", ["user"] = phone.UserId },
                ["password"] = phone.Password,
                ["session"] = session,
            },
        })).EnsureSuccess();

        (await phone.GetAsync(WhoAmI)).EnsureSuccess();
        await CrossSilo.WaitForAsync(fixture.A, fixture.B);
        await AssertRejectedAsync(laptop);
        await AssertRejectedAsync(laptop.On(fixture.A));

        var old = await fixture.B.Http.PostJsonAsync("/_matrix/client/v3/login",
            new { type = "m.login.password", user = phone.UserId, password = phone.Password });
        Assert.Equal(403, old.StatusCode);
        await MatrixTestClient.LoginAsync(fixture.B, phone.UserId, "new secret");
    }
}

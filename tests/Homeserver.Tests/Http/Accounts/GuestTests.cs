using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.Accounts;

/// <summary>Guest access (spec "Guest access") on two silos with guests allowed.</summary>
public sealed class GuestTests : IAsyncLifetime
{
    private HomeserverTestCluster _cluster = null!;

    public async Task InitializeAsync() => _cluster = await HomeserverTestCluster.StartAsync(silos: 2, new Dictionary<string, string?>
    {
        ["Homeserver:EnableGuestAccess"] = "true",
    });

    public async Task DisposeAsync() => await _cluster.DisposeAsync();

    private async Task<(string UserId, string Token)> GuestAsync(int silo = 0)
    {
        var guest = (await _cluster.Silos[silo].Http.PostJsonAsync($"{V3}/register?kind=guest", new JsonObject())).EnsureSuccess();
        return (guest["user_id"].GetValue<string>(), guest["access_token"].GetValue<string>());
    }

    /// <summary>The user's membership as the reader's silo sees it, once that silo has applied it: writes made through
    /// the other silo (or by the room grain after the request's own write) reach this one's reader a moment later.
    /// Bounded: 10 s.</summary>
    private static async Task<string> MembershipAsync(MatrixTestClient reader, string roomId, string userId, string expected)
    {
        var seen = "";
        for (var i = 0; i < 100; i++)
        {
            seen = (await reader.GetAsync($"{Room(roomId)}/state/m.room.member/{E(userId)}")).EnsureSuccess()["membership"].GetValue<string>();
            if (seen == expected) break;
            await Task.Delay(100);
        }
        return seen;
    }

    [Fact]
    public async Task Guests_join_only_guest_access_rooms_and_leave_when_it_is_revoked()
    {
        var alice = await MatrixTestClient.RegisterAsync(_cluster.Silos[0]);
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        var (guestId, token) = await GuestAsync(1);
        var http = _cluster.Silos[1].Http;

        AssertError(await http.PostJsonAsync($"{V3}/join/{E(roomId)}", new JsonObject(), token), 403, "M_GUEST_ACCESS_FORBIDDEN");
        (await alice.PutAsync($"{Room(roomId)}/state/m.room.guest_access/", new { guest_access = "can_join" })).EnsureSuccess();
        (await http.PostJsonAsync($"{V3}/join/{E(roomId)}", new JsonObject(), token)).EnsureSuccess();
        Assert.Equal("join", await MembershipAsync(alice, roomId, guestId, "join"));
        var sync = (await http.GetJsonAsync($"{V3}/sync", token)).EnsureSuccess();
        Assert.NotNull(sync["rooms"]["join"]![roomId]);
        // The legacy event stream: one room at a time for a guest.
        AssertError(await http.GetJsonAsync($"{V3}/events?timeout=0", token), 403, "M_GUEST_ACCESS_FORBIDDEN");
        (await http.GetJsonAsync($"{V3}/events?timeout=0&room_id={E(roomId)}", token)).EnsureSuccess();

        // Revoked: the guest is out, and cannot come back; a full member stays.
        var bob = await MatrixTestClient.RegisterAsync(_cluster.Silos[1]);
        await bob.JoinAsync(roomId);
        (await alice.PutAsync($"{Room(roomId)}/state/m.room.guest_access/", new { guest_access = "forbidden" })).EnsureSuccess();
        Assert.Equal("leave", await MembershipAsync(alice, roomId, guestId, "leave"));
        Assert.Equal("join", await MembershipAsync(alice, roomId, bob.UserId, "join"));
        AssertError(await http.PostJsonAsync($"{V3}/join/{E(roomId)}", new JsonObject(), token), 403, "M_GUEST_ACCESS_FORBIDDEN");
    }

    [Fact]
    public async Task A_guest_upgrades_to_a_full_account_with_its_own_token_only()
    {
        var (guestId, token) = await GuestAsync();
        var (_, otherToken) = await GuestAsync();
        var localpart = guestId[1..guestId.IndexOf(':')];
        var http = _cluster.Silos[0].Http;

        // Another guest's token cannot upgrade this one.
        var stolen = await http.PostJsonAsync($"{V3}/register", new JsonObject
        {
            ["username"] = localpart, ["password"] = "SIR_Arthur_David", ["guest_access_token"] = otherToken, ["auth"] = new JsonObject { ["type"] = "m.login.dummy" },
        });
        Assert.Equal(403, stolen.StatusCode);

        // Challenge first, then the dummy stage with only auth: the session remembered the guest (not its token).
        var challenge = await http.PostJsonAsync($"{V3}/register", new JsonObject
        {
            ["username"] = localpart, ["password"] = "SIR_Arthur_David", ["guest_access_token"] = token,
        });
        Assert.Equal(401, challenge.StatusCode);
        var session = challenge["session"].GetValue<string>();
        var upgraded = (await _cluster.Silos[1].Http.PostJsonAsync($"{V3}/register", new JsonObject
        {
            ["auth"] = new JsonObject { ["type"] = "m.login.dummy", ["session"] = session },
        })).EnsureSuccess();
        Assert.Equal(guestId, upgraded["user_id"].GetValue<string>());

        var me = (await http.GetJsonAsync($"{V3}/account/whoami", upgraded["access_token"].GetValue<string>())).EnsureSuccess();
        Assert.False(me["is_guest"].GetValue<bool>());
        // The guest's token is revoked: at once where the upgrade was served, and on the other silo once its reader
        // has applied the revocation (the token was cached there by the challenge request).
        Assert.Equal(401, (await _cluster.Silos[1].Http.GetJsonAsync($"{V3}/account/whoami", token)).StatusCode);
        await CrossSilo.WaitForAsync(_cluster.Silos[1], _cluster.Silos[0]);
        Assert.Equal(401, (await http.GetJsonAsync($"{V3}/account/whoami", token)).StatusCode);
        await MatrixTestClient.LoginAsync(_cluster.Silos[1], localpart, "SIR_Arthur_David");

        // A full account is no guest to upgrade again.
        var again = await http.PostJsonAsync($"{V3}/register", new JsonObject
        {
            ["username"] = localpart, ["password"] = "another", ["guest_access_token"] = upgraded["access_token"].GetValue<string>(),
            ["auth"] = new JsonObject { ["type"] = "m.login.dummy" },
        });
        Assert.Equal(403, again.StatusCode);
    }
}

using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.Accounts;

/// <summary>POST /account/deactivate across two silos.</summary>
[Collection(AccountsCollection.Name)]
public sealed class DeactivationTests(AccountsCluster fixture)
{
    private const string Deactivate = $"{V3}/account/deactivate";

    private static JsonObject PasswordAuth(MatrixTestClient user, string password) => new()
    {
        ["type"] = "m.login.password",
        ["identifier"] = new JsonObject { ["type"] = "m.id.user", ["user"] = user.UserId },
        ["password"] = password,
    };

    [Fact]
    public async Task An_erased_users_messages_stay_for_those_who_were_there_and_come_pruned_to_later_members()
    {
        var creator = await MatrixTestClient.RegisterAsync(fixture.A);
        var member = await MatrixTestClient.RegisterAsync(fixture.B);
        var joiner = await MatrixTestClient.RegisterAsync(fixture.B);
        var roomId = await creator.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        await member.JoinAsync(roomId);
        var message = await creator.SendTextAsync(roomId, "said before the erasure");
        await joiner.JoinAsync(roomId);
        JsonNode? Find(MatrixResponse sync) =>
            sync.RoomEvents(roomId, "timeline").FirstOrDefault(e => e!["event_id"]!.GetValue<string>() == message);
        Assert.Equal("said before the erasure", Find(await joiner.SyncAsync())!["content"]!["body"]!.GetValue<string>());

        (await creator.PostAsync(Deactivate, new JsonObject { ["auth"] = PasswordAuth(creator, creator.Password), ["erase"] = true })).EnsureSuccess();
        await CrossSilo.WaitForAsync(fixture.A, fixture.B);

        Assert.Equal("said before the erasure", Find(await member.SyncAsync())!["content"]!["body"]!.GetValue<string>());
        var pruned = Find(await joiner.SyncAsync())!;
        Assert.Equal("m.room.message", pruned["type"]!.GetValue<string>());
        Assert.Empty(pruned["content"]!.AsObject());
        var history = (await joiner.GetAsync($"{Room(roomId)}/messages?dir=b&limit=20")).EnsureSuccess()["chunk"]!.AsArray();
        Assert.Empty(history.Single(e => e!["event_id"]!.GetValue<string>() == message)!["content"]!.AsObject());
        var memberHistory = (await member.GetAsync($"{Room(roomId)}/messages?dir=b&limit=20")).EnsureSuccess()["chunk"]!.AsArray();
        Assert.Equal("said before the erasure", memberHistory.Single(e => e!["event_id"]!.GetValue<string>() == message)!["content"]!["body"]!.GetValue<string>());
    }

    [Fact]
    public async Task Deactivation_needs_the_password_then_revokes_tokens_leaves_rooms_and_erases_the_profile()
    {
        var alice = await MatrixTestClient.RegisterAsync(fixture.A);
        var bob = await MatrixTestClient.RegisterAsync(fixture.B);
        (await alice.PutAsync($"{V3}/profile/{E(alice.UserId)}/displayname", new { displayname = "Alice" })).EnsureSuccess();
        var shared = await bob.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        await alice.JoinAsync(shared);
        var invitedTo = await bob.CreateRoomAsync(new JsonObject { ["invite"] = new JsonArray(alice.UserId) });
        var laptop = await MatrixTestClient.LoginAsync(fixture.B, alice.UserId, alice.Password, deviceId: "LAPTOP");

        var challenge = await alice.PostAsync(Deactivate, new JsonObject());
        Assert.Equal(401, challenge.StatusCode);
        var wrong = await alice.PostAsync(Deactivate, new JsonObject { ["auth"] = PasswordAuth(alice, "wrong") });
        Assert.Equal(401, wrong.StatusCode);
        Assert.Equal("M_FORBIDDEN", wrong.ErrCode);
        foreach (var key in new[] { "flows", "params", "completed", "session", "error" }) Assert.NotNull(wrong.Body![key]);
        (await laptop.GetAsync($"{V3}/account/whoami")).EnsureSuccess();

        var done = (await alice.PostAsync(Deactivate, new JsonObject { ["auth"] = PasswordAuth(alice, alice.Password), ["erase"] = true })).EnsureSuccess();
        Assert.Equal("no-support", done["id_server_unbind_result"].GetValue<string>());

        // Every token of every device, on both silos.
        Assert.Equal("M_UNKNOWN_TOKEN", (await alice.GetAsync($"{V3}/account/whoami")).ErrCode);
        await CrossSilo.WaitForAsync(fixture.A, fixture.B);
        Assert.Equal("M_UNKNOWN_TOKEN", (await laptop.GetAsync($"{V3}/account/whoami")).ErrCode);
        var login = await fixture.B.Http.PostJsonAsync($"{V3}/login", new JsonObject
        {
            ["type"] = "m.login.password", ["identifier"] = new JsonObject { ["type"] = "m.id.user", ["user"] = alice.UserId },
            ["password"] = alice.Password,
        });
        Assert.Equal(403, login.StatusCode);
        Assert.Equal("M_USER_DEACTIVATED", login.ErrCode);

        // The joined room was left and the invite rejected; the name is not free again.
        var members = (await bob.GetAsync($"{Room(shared)}/state/m.room.member/{E(alice.UserId)}")).EnsureSuccess();
        Assert.Equal("leave", members["membership"].GetValue<string>());
        var invite = (await bob.GetAsync($"{Room(invitedTo)}/state/m.room.member/{E(alice.UserId)}")).EnsureSuccess();
        Assert.Equal("leave", invite["membership"].GetValue<string>());
        var profile = await bob.GetAsync($"{V3}/profile/{E(alice.UserId)}");
        Assert.Null(profile.Body?["displayname"]);
        var again = await fixture.A.Http.PostJsonAsync($"{V3}/register", new JsonObject
        {
            ["username"] = alice.UserId[1..alice.UserId.IndexOf(':')], ["password"] = "another-password",
            ["auth"] = new JsonObject { ["type"] = "m.login.dummy" },
        });
        Assert.Equal("M_USER_IN_USE", again.ErrCode);
    }
}

using System.Text.Json.Nodes;
using Homeserver.Tests.Http.Keys;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Http.Keys.Api;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.Profile;

/// <summary>Profiles over two silos (the user directory has its own class).</summary>
[Collection(KeysCollection.Name)]
public sealed class ProfileTests(KeysCluster fx)
{
    private static string ProfilePath(string userId) => $"{V3}/profile/{MatrixTestClient.Escape(userId)}";

    private static string Localpart(string userId) => userId[1..userId.IndexOf(':')];

    private static async Task<JsonObject> MemberContentAsync(MatrixTestClient reader, string roomId, string userId) =>
        (await reader.GetAsync($"{Room(roomId)}/state/m.room.member/{MatrixTestClient.Escape(userId)}")).EnsureSuccess().Body!.AsObject();

    [Fact]
    public async Task A_new_user_is_named_after_their_localpart_and_unknown_users_are_not_found()
    {
        var alice = await fx.UserAsync("alice");
        var profile = (await fx.B.Http.GetJsonAsync(ProfilePath(alice.UserId))).EnsureSuccess();
        Assert.Equal(Localpart(alice.UserId), profile["displayname"].GetValue<string>());
        Assert.Null(profile.Body!["avatar_url"]);
        Assert.Equal(Localpart(alice.UserId), (await alice.GetAsync($"{ProfilePath(alice.UserId)}/displayname")).EnsureSuccess()["displayname"].GetValue<string>());
        Assert.Empty((await alice.GetAsync($"{ProfilePath(alice.UserId)}/avatar_url")).EnsureSuccess().Body!.AsObject());

        AssertError(await alice.GetAsync(ProfilePath("@nobody:localhost")), 404, "M_NOT_FOUND");
        AssertError(await alice.GetAsync($"{ProfilePath("@nobody:localhost")}/displayname"), 404, "M_NOT_FOUND");
        AssertError(await alice.GetAsync($"{ProfilePath("@nobody:elsewhere.org")}/avatar_url"), 404, "M_NOT_FOUND");
        AssertError(await alice.GetAsync(ProfilePath("not-a-user")), 400, "M_INVALID_PARAM");
    }

    [Fact]
    public async Task Changes_are_served_by_the_other_silo_and_only_the_owner_may_make_them()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        (await alice.PutAsync($"{ProfilePath(alice.UserId)}/displayname", new JsonObject { ["displayname"] = "Alice A." })).EnsureSuccess();
        (await alice.PutAsync($"{ProfilePath(alice.UserId)}/avatar_url", new JsonObject { ["avatar_url"] = "mxc://localhost/abc" })).EnsureSuccess();
        var profile = (await bob.On(fx.B).GetAsync(ProfilePath(alice.UserId))).EnsureSuccess();
        Assert.Equal("Alice A.", profile["displayname"].GetValue<string>());
        Assert.Equal("mxc://localhost/abc", profile["avatar_url"].GetValue<string>());

        // An empty name removes it.
        (await alice.On(fx.B).PutAsync($"{ProfilePath(alice.UserId)}/displayname", new JsonObject { ["displayname"] = "" })).EnsureSuccess();
        Assert.Null((await fx.A.Http.GetJsonAsync(ProfilePath(alice.UserId))).EnsureSuccess().Body!["displayname"]);

        AssertError(await bob.PutAsync($"{ProfilePath(alice.UserId)}/displayname", new JsonObject { ["displayname"] = "Mallory" }), 403, "M_FORBIDDEN");
        AssertError(await bob.PutAsync($"{ProfilePath(alice.UserId)}/avatar_url", new JsonObject { ["avatar_url"] = "mxc://x/y" }), 403, "M_FORBIDDEN");
        AssertError(await alice.PutAsync($"{ProfilePath(alice.UserId)}/displayname", new JsonObject()), 400, "M_MISSING_PARAM");
        AssertError(await alice.PutAsync($"{ProfilePath(alice.UserId)}/displayname", new JsonObject { ["displayname"] = 5 }), 400, "M_INVALID_PARAM");
        AssertError(await alice.PutAsync($"{ProfilePath(alice.UserId)}/displayname", new JsonObject { ["displayname"] = new string('x', 257) }), 400, "M_BAD_JSON");
        AssertError(await fx.A.Http.PutJsonAsync($"{ProfilePath(alice.UserId)}/displayname", new JsonObject { ["displayname"] = "x" }), 401, "M_MISSING_TOKEN");
        // Bob's failed attempts changed nothing of his own profile either.
        Assert.Equal(Localpart(bob.UserId), (await alice.GetAsync(ProfilePath(bob.UserId))).EnsureSuccess()["displayname"].GetValue<string>());
    }

    [Fact]
    public async Task Joins_carry_the_profile_and_changes_reach_every_joined_room()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        (await bob.PutAsync($"{ProfilePath(bob.UserId)}/displayname", new JsonObject { ["displayname"] = "Bobby" })).EnsureSuccess();
        var room1 = await SharedRoomAsync(alice, bob);
        var room2 = await SharedRoomAsync(alice, bob);
        Assert.Equal("Bobby", (await MemberContentAsync(alice, room1, bob.UserId))["displayname"]!.GetValue<string>());
        Assert.Equal(Localpart(alice.UserId), (await MemberContentAsync(bob, room1, alice.UserId))["displayname"]!.GetValue<string>());
        var invited = await alice.CreateRoomAsync(new JsonObject { ["invite"] = new JsonArray(bob.UserId) });
        var invite = await MemberContentAsync(alice, invited, bob.UserId);
        Assert.Equal("invite", invite["membership"]!.GetValue<string>());
        Assert.Equal("Bobby", invite["displayname"]!.GetValue<string>());

        var since = await alice.On(fx.B).SyncTokenAsync();
        (await bob.PutAsync($"{ProfilePath(bob.UserId)}/displayname", new JsonObject { ["displayname"] = "Robert" })).EnsureSuccess();
        (await bob.PutAsync($"{ProfilePath(bob.UserId)}/avatar_url", new JsonObject { ["avatar_url"] = "mxc://localhost/bob" })).EnsureSuccess();
        foreach (var room in new[] { room1, room2 })
        {
            // Bob's PUTs waited for his own silo (A) to have both member events; B's reader may be one event behind, as
            // another user's writes on another silo may be, so alice reads on B until the second one is there (bounded).
            var member = await MemberContentAsync(alice.On(fx.B), room, bob.UserId);
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (member["avatar_url"] is null && DateTime.UtcNow < deadline)
            {
                await Task.Delay(50);
                member = await MemberContentAsync(alice.On(fx.B), room, bob.UserId);
            }
            Assert.Equal("join", member["membership"]!.GetValue<string>());
            Assert.Equal("Robert", member["displayname"]!.GetValue<string>());
            Assert.Equal("mxc://localhost/bob", member["avatar_url"]!.GetValue<string>());
        }
        // The room bob was only invited to is left alone.
        Assert.Equal("Bobby", (await MemberContentAsync(alice, invited, bob.UserId))["displayname"]!.GetValue<string>());

        // Alice's long-poll on B ends at the first change B's reader has (room2's event may come before room1's), so
        // she polls on from each answer, as a client does, until room1's new member event is in one.
        var seen = false;
        for (var poll = 0; poll < 5 && !seen; poll++)
        {
            var sync = (await alice.On(fx.B).GetAsync($"{V3}/sync?timeout=10000&since={since}")).EnsureSuccess();
            since = sync["next_batch"].GetValue<string>();
            seen = sync.Body?["rooms"]?["join"]?[room1]?["timeline"]?["events"] is JsonArray timeline
                   && timeline.Any(e => e?["type"]?.GetValue<string>() == "m.room.member" && e["state_key"]?.GetValue<string>() == bob.UserId
                                        && e["content"]?["displayname"]?.GetValue<string>() == "Robert");
        }
        Assert.True(seen, "room1's member event with the new display name never reached alice's sync on B");
    }
}

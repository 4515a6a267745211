using System.Text.Json.Nodes;
using Homeserver.Streams;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.Rooms;

[Collection(RoomsHttpCollection.Name)]
public sealed class MembershipHttpTests(RoomsHttpCluster fx)
{
    private static IEnumerable<string> Members(MatrixResponse r, string membership) =>
        r["chunk"]!.AsArray().Where(e => e!["content"]!["membership"]!.GetValue<string>() == membership).Select(e => e!["state_key"]!.GetValue<string>());

    [Fact]
    public async Task Invite_join_kick_ban_unban_leave_and_forget_across_silos()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        var bobOnB = bob.On(fx.B);
        var roomId = await alice.CreateRoomAsync();
        var room = Room(roomId);

        // Not invited yet: a private room refuses.
        var early = await bobOnB.PostAsync($"{room}/join");
        Assert.Equal((403, "M_FORBIDDEN"), (early.StatusCode, early.ErrCode));

        var missing = await alice.PostAsync($"{room}/invite", new JsonObject());
        Assert.Equal((400, "M_MISSING_PARAM"), (missing.StatusCode, missing.ErrCode));
        var invalid = await alice.PostAsync($"{room}/invite", new JsonObject { ["user_id"] = "bob" });
        Assert.Equal((400, "M_INVALID_PARAM"), (invalid.StatusCode, invalid.ErrCode));
        (await alice.PostAsync($"{room}/invite", new JsonObject { ["user_id"] = bob.UserId, ["reason"] = "welcome" })).EnsureSuccess();
        await fx.SettleAsync();
        Assert.Equal(roomId, (await bobOnB.PostAsync($"{V3}/join/{MatrixTestClient.Escape(roomId)}")).EnsureSuccess()["room_id"]!.GetValue<string>());

        var joinedMembers = (await bobOnB.GetAsync($"{room}/joined_members")).EnsureSuccess();
        Assert.Equal(new[] { alice.UserId, bob.UserId }.Order(), joinedMembers["joined"]!.AsObject().Select(kv => kv.Key).Order());
        // Both profile keys are there even when unset (null), as Synapse answers.
        var bobsEntry = joinedMembers["joined"]![bob.UserId]!.AsObject();
        Assert.True(bobsEntry.ContainsKey("display_name") && bobsEntry.ContainsKey("avatar_url"), bobsEntry.ToJsonString());
        Assert.Null(bobsEntry["avatar_url"]);
        Assert.Contains(roomId, (await bobOnB.GetAsync($"{V3}/joined_rooms"))["joined_rooms"]!.AsArray().Select(r => r!.GetValue<string>()));

        // Bob (level 0) may not kick or ban.
        var bobKicks = await bobOnB.PostAsync($"{room}/kick", new JsonObject { ["user_id"] = alice.UserId });
        Assert.Equal((403, "M_FORBIDDEN"), (bobKicks.StatusCode, bobKicks.ErrCode));

        (await alice.PostAsync($"{room}/kick", new JsonObject { ["user_id"] = bob.UserId, ["reason"] = "out" })).EnsureSuccess();
        await fx.SettleAsync();
        var afterKick = (await alice.On(fx.B).GetAsync($"{room}/members?membership=leave")).EnsureSuccess();
        Assert.Equal(new[] { bob.UserId }, Members(afterKick, "leave"));
        Assert.DoesNotContain(roomId, (await bobOnB.GetAsync($"{V3}/joined_rooms"))["joined_rooms"]!.AsArray().Select(r => r!.GetValue<string>()));

        (await alice.PostAsync($"{room}/ban", new JsonObject { ["user_id"] = bob.UserId })).EnsureSuccess();
        await fx.SettleAsync();
        var banned = await bobOnB.PostAsync($"{room}/join");
        Assert.Equal(403, banned.StatusCode);
        var notBanned = (await alice.GetAsync($"{room}/members?not_membership=ban")).EnsureSuccess();
        Assert.DoesNotContain(bob.UserId, notBanned["chunk"]!.AsArray().Select(e => e!["state_key"]!.GetValue<string>()));

        (await alice.PostAsync($"{room}/unban", new JsonObject { ["user_id"] = bob.UserId })).EnsureSuccess();
        var unbanAgain = await alice.PostAsync($"{room}/unban", new JsonObject { ["user_id"] = bob.UserId });
        Assert.Equal(403, unbanAgain.StatusCode);

        // A departed member still reads the state as it was when they left, not later changes.
        (await alice.PutAsync($"{room}/state/m.room.name", new JsonObject { ["name"] = "after bob" })).EnsureSuccess();
        await fx.SettleAsync();
        var bobState = (await bobOnB.GetAsync($"{room}/state")).EnsureSuccess().Body!.AsArray();
        Assert.DoesNotContain(bobState, e => e!["type"]!.GetValue<string>() == "m.room.name");

        var forgetJoined = await alice.PostAsync($"{room}/forget");
        Assert.Equal(400, forgetJoined.StatusCode);
        (await alice.PostAsync($"{room}/leave", new JsonObject { ["reason"] = "bye" })).EnsureSuccess();
        (await alice.PostAsync($"{room}/forget")).EnsureSuccess();
        var leaveAgain = await alice.PostAsync($"{room}/leave");
        Assert.Equal(403, leaveAgain.StatusCode);
    }

    [Fact]
    public async Task Custom_keys_of_a_membership_request_are_kept_in_the_event()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        (await bob.PostAsync($"{V3}/join/{MatrixTestClient.Escape(roomId)}", new JsonObject
        {
            ["reason"] = "hello", ["foo"] = "bar", ["membership"] = "ban",
        })).EnsureSuccess();
        var member = (await bob.GetAsync($"{Room(roomId)}/state/m.room.member/{MatrixTestClient.Escape(bob.UserId)}")).EnsureSuccess();
        Assert.Equal("join", member["membership"].GetValue<string>()); // the server decides the membership
        Assert.Equal("bar", member["foo"].GetValue<string>());
        Assert.Equal("hello", member["reason"].GetValue<string>());
        (await alice.PostAsync($"{Room(roomId)}/kick", new JsonObject { ["user_id"] = bob.UserId, ["why"] = "tidy" })).EnsureSuccess();
        var kicked = (await alice.GetAsync($"{Room(roomId)}/state/m.room.member/{MatrixTestClient.Escape(bob.UserId)}")).EnsureSuccess();
        Assert.Equal("leave", kicked["membership"].GetValue<string>());
        Assert.Equal("tidy", kicked["why"].GetValue<string>());
        Assert.False(kicked.Body!.AsObject().ContainsKey("user_id"));
    }

    [Fact]
    public async Task Members_at_a_token_show_the_room_as_it_was()
    {
        var alice = await fx.UserAsync("alice");
        var carol = await fx.UserAsync("carol");
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        var before = fx.A.Get<StreamNotifier>().Current.Serialize();
        (await carol.PostAsync($"{Room(roomId)}/join")).EnsureSuccess();

        var now = (await alice.GetAsync($"{Room(roomId)}/members")).EnsureSuccess();
        Assert.Contains(carol.UserId, Members(now, "join"));
        var then = (await alice.GetAsync($"{Room(roomId)}/members?at={before}")).EnsureSuccess();
        Assert.Equal(new[] { alice.UserId }, Members(then, "join"));
        var badToken = await alice.GetAsync($"{Room(roomId)}/members?at=garbage");
        Assert.Equal((400, "M_INVALID_PARAM"), (badToken.StatusCode, badToken.ErrCode));
    }

    [Fact]
    public async Task Outsiders_and_unknown_rooms_get_matrix_errors()
    {
        var alice = await fx.UserAsync("alice");
        var eve = await fx.UserAsync("eve");
        var roomId = await alice.CreateRoomAsync();
        await fx.SettleAsync();
        var eveOnB = eve.On(fx.B);
        foreach (var path in new[] { $"{Room(roomId)}/members", $"{Room(roomId)}/joined_members", $"{Room(roomId)}/state", $"{Room(roomId)}/state/m.room.create" })
        {
            var r = await eveOnB.GetAsync(path);
            Assert.True(r.StatusCode == 403 && r.ErrCode == "M_FORBIDDEN", $"{path}: {r.StatusCode} {r.Text}");
        }
        var unknown = Room("!unknown:localhost");
        Assert.Equal(404, (await eve.GetAsync($"{unknown}/state")).StatusCode);
        Assert.Equal(404, (await eve.PostAsync($"{unknown}/join")).StatusCode);
        var malformed = await eve.PostAsync($"{V3}/rooms/not-a-room/join");
        Assert.Equal((400, "M_INVALID_PARAM"), (malformed.StatusCode, malformed.ErrCode));
        var kickNobody = await alice.PostAsync($"{Room(roomId)}/kick", new JsonObject { ["user_id"] = eve.UserId });
        Assert.Equal(403, kickNobody.StatusCode);
    }
}

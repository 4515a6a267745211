using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.Rooms;

[Collection(RoomsHttpCollection.Name)]
public sealed class CreateRoomTests(RoomsHttpCluster fx)
{
    [Fact]
    public async Task Created_on_one_silo_the_room_reads_back_on_the_other()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        var roomId = await alice.CreateRoomAsync(new JsonObject
        {
            ["name"] = "Lounge",
            ["topic"] = "Chat",
            ["invite"] = new JsonArray(bob.UserId),
            ["is_direct"] = true,
            ["initial_state"] = new JsonArray(new JsonObject { ["type"] = "m.custom", ["state_key"] = "k", ["content"] = new JsonObject { ["v"] = 1 } }),
        });
        await fx.SettleAsync();
        var onB = alice.On(fx.B);

        var state = (await onB.GetAsync($"{Room(roomId)}/state")).EnsureSuccess().Body!.AsArray();
        var types = state.Select(e => e!["type"]!.GetValue<string>()).ToHashSet();
        Assert.Superset(new HashSet<string> { "m.room.create", "m.room.member", "m.room.power_levels", "m.room.join_rules",
            "m.room.history_visibility", "m.room.guest_access", "m.room.name", "m.room.topic", "m.custom" }, types);
        Assert.DoesNotContain("m.room.encryption", types);
        Assert.All(state, e => Assert.Null(e!["hashes"]));
        var invite = state.Single(e => e!["type"]!.GetValue<string>() == "m.room.member" && e["state_key"]!.GetValue<string>() == bob.UserId)!;
        Assert.Equal("invite", invite["content"]!["membership"]!.GetValue<string>());
        Assert.True(invite["content"]!["is_direct"]!.GetValue<bool>());

        Assert.Equal("Lounge", (await onB.GetAsync($"{Room(roomId)}/state/m.room.name"))["name"]!.GetValue<string>());
        Assert.Equal("Lounge", (await onB.GetAsync($"{Room(roomId)}/state/m.room.name/"))["name"]!.GetValue<string>());
        Assert.Equal(1, (await onB.GetAsync($"{Room(roomId)}/state/m.custom/k"))["v"]!.GetValue<int>());
        Assert.Equal("invite", (await onB.GetAsync($"{Room(roomId)}/state/m.room.join_rules"))["join_rule"]!.GetValue<string>());
        var create = await onB.GetAsync($"{Room(roomId)}/state/m.room.create?format=event");
        Assert.Equal("10", create["content"]!["room_version"]!.GetValue<string>());
        Assert.Equal(roomId, create["room_id"]!.GetValue<string>());

        var joined = (await onB.GetAsync($"{V3}/joined_rooms")).EnsureSuccess();
        Assert.Contains(roomId, joined["joined_rooms"]!.AsArray().Select(r => r!.GetValue<string>()));
    }

    [Fact]
    public async Task Public_preset_and_room_version_and_overrides_are_applied()
    {
        var alice = await fx.UserAsync("alice");
        var roomId = await alice.CreateRoomAsync(new JsonObject
        {
            ["visibility"] = "public",
            ["room_version"] = "11",
            ["power_level_content_override"] = new JsonObject { ["events_default"] = 10 },
            ["creation_content"] = new JsonObject { ["m.federate"] = false },
        });
        Assert.Equal("public", (await alice.GetAsync($"{Room(roomId)}/state/m.room.join_rules"))["join_rule"]!.GetValue<string>());
        var create = await alice.GetAsync($"{Room(roomId)}/state/m.room.create");
        Assert.Equal("11", create["room_version"]!.GetValue<string>());
        Assert.False(create["m.federate"].GetValue<bool>());
        Assert.Null(create.Body!["creator"]);
        var levels = await alice.GetAsync($"{Room(roomId)}/state/m.room.power_levels");
        Assert.Equal(10, levels["events_default"]!.GetValue<int>());
        Assert.Equal(100, levels["users"][alice.UserId]!.GetValue<int>());
    }

    [Fact]
    public async Task Invalid_requests_are_client_errors()
    {
        var alice = await fx.UserAsync("alice");
        async Task Expect(object body, int status, string errcode)
        {
            var r = await alice.PostAsync($"{V3}/createRoom", body);
            Assert.True(r.StatusCode == status && r.ErrCode == errcode, $"{status} {errcode} expected, got {r.StatusCode} {r.Text}");
        }
        await Expect(new JsonObject { ["room_version"] = "99" }, 400, "M_UNSUPPORTED_ROOM_VERSION");
        await Expect(new JsonObject { ["preset"] = "party" }, 400, "M_INVALID_PARAM");
        await Expect(new JsonObject { ["visibility"] = "secret" }, 400, "M_INVALID_PARAM");
        await Expect(new JsonObject { ["invite"] = "@bob:localhost" }, 400, "M_BAD_JSON");
        await Expect(new JsonObject { ["invite"] = new JsonArray("not-a-user") }, 400, "M_INVALID_PARAM");
        await Expect(new JsonObject { ["name"] = 5 }, 400, "M_BAD_JSON");
        await Expect(new JsonObject { ["creation_content"] = "x" }, 400, "M_BAD_JSON");
        await Expect(new JsonObject { ["initial_state"] = new JsonArray(new JsonObject { ["type"] = "m.x" }) }, 400, "M_BAD_JSON");
        await Expect("[1,2]", 400, "M_BAD_JSON");
        await Expect("{nope", 400, "M_NOT_JSON");
        await Expect(new JsonObject { ["room_alias_name"] = "has space" }, 400, "M_INVALID_PARAM");

        var anonymous = await fx.A.Http.PostJsonAsync($"{V3}/createRoom", new JsonObject());
        Assert.Equal((401, "M_MISSING_TOKEN"), (anonymous.StatusCode, anonymous.ErrCode));
    }

    [Fact]
    public async Task Taken_aliases_are_M_ROOM_IN_USE_and_aliases_can_be_joined()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        var alias = MatrixTestClient.UniqueLocalpart("alias");
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["room_alias_name"] = alias, ["preset"] = "public_chat" });
        Assert.Equal($"#{alias}:localhost", (await alice.GetAsync($"{Room(roomId)}/state/m.room.canonical_alias"))["alias"]!.GetValue<string>());

        var again = await bob.PostAsync($"{V3}/createRoom", new JsonObject { ["room_alias_name"] = alias });
        Assert.Equal((400, "M_ROOM_IN_USE"), (again.StatusCode, again.ErrCode));

        await fx.SettleAsync();
        var joined = (await bob.On(fx.B).PostAsync($"{V3}/join/{MatrixTestClient.Escape($"#{alias}:localhost")}")).EnsureSuccess();
        Assert.Equal(roomId, joined["room_id"]!.GetValue<string>());
        var missing = await bob.PostAsync($"{V3}/join/{MatrixTestClient.Escape("#nothing-here:localhost")}");
        Assert.Equal((404, "M_NOT_FOUND"), (missing.StatusCode, missing.ErrCode));
    }
}

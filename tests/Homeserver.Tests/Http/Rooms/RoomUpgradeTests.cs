using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.Rooms;

/// <summary>POST /rooms/{roomId}/upgrade (spec "Room Upgrades") on two silos.</summary>
[Collection(RoomsHttpCollection.Name)]
public sealed class RoomUpgradeTests(RoomsHttpCluster fx)
{
    private static async Task<JsonNode?> StateAsync(MatrixTestClient reader, string roomId, string type, string stateKey = "") =>
        (await reader.GetAsync($"{Room(roomId)}/state/{type}/{E(stateKey)}")).EnsureSuccess().Body;

    [Fact]
    public async Task Joining_the_upgraded_room_copies_the_users_push_rules_tags_and_direct_marks_for_the_old_one()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        var oldRoom = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        await bob.JoinAsync(oldRoom);
        (await alice.PutAsync($"{V3}/user/{E(alice.UserId)}/account_data/m.direct", new JsonObject { [bob.UserId] = new JsonArray(oldRoom) })).EnsureSuccess();
        (await bob.PutAsync($"{V3}/user/{E(bob.UserId)}/rooms/{E(oldRoom)}/tags/u.work", new JsonObject { ["order"] = 0.5 })).EnsureSuccess();
        (await bob.PutAsync($"{V3}/pushrules/global/room/{E(oldRoom)}", new JsonObject { ["actions"] = new JsonArray("dont_notify") })).EnsureSuccess();
        (await bob.PutAsync($"{V3}/pushrules/global/override/keyword-here", new JsonObject
        {
            ["conditions"] = new JsonArray(
                new JsonObject { ["kind"] = "event_match", ["key"] = "room_id", ["pattern"] = oldRoom },
                new JsonObject { ["kind"] = "event_match", ["key"] = "content.body", ["pattern"] = "deploy" }),
            ["actions"] = new JsonArray("notify"),
        })).EnsureSuccess();

        var newRoom = (await alice.PostAsync($"{Room(oldRoom)}/upgrade", new JsonObject { ["new_version"] = "9" })).EnsureSuccess()["replacement_room"].GetValue<string>();
        // The upgrader's at once: the room stays a direct room.
        var direct = (await alice.GetAsync($"{V3}/user/{E(alice.UserId)}/account_data/m.direct")).EnsureSuccess()[bob.UserId]!.AsArray();
        Assert.Equal([oldRoom, newRoom], direct.Select(r => r!.GetValue<string>()).ToArray());
        await bob.On(fx.B).JoinAsync(newRoom);
        var tags = (await bob.On(fx.B).GetAsync($"{V3}/user/{E(bob.UserId)}/rooms/{E(newRoom)}/tags")).EnsureSuccess()["tags"]!;
        Assert.Equal(0.5, tags["u.work"]!["order"]!.GetValue<double>());

        // Read on the silo that served the join, right after it: the copy is part of what the join waited for.
        var rules = (await bob.On(fx.B).GetAsync($"{V3}/pushrules/")).EnsureSuccess()["global"];
        var roomRule = rules["room"]!.AsArray().Single(r => r!["rule_id"]!.GetValue<string>() == newRoom)!;
        Assert.Equal("dont_notify", roomRule["actions"]![0]!.GetValue<string>());
        Assert.Contains(rules["room"]!.AsArray(), r => r!["rule_id"]!.GetValue<string>() == oldRoom);
        // A rule whose id does not name the room follows it to the new room.
        var keyword = rules["override"]!.AsArray().Single(r => r!["rule_id"]!.GetValue<string>() == "keyword-here")!;
        Assert.Equal(newRoom, keyword["conditions"]![0]!["pattern"]!.GetValue<string>());
    }

    [Fact]
    public async Task An_upgrade_tombstones_the_room_and_carries_state_bans_aliases_and_the_listing_over()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        var carol = await fx.UserAsync("carol");
        var alias = $"upgrade{Guid.NewGuid():N}"[..20];
        var oldRoom = await alice.CreateRoomAsync(new JsonObject
        {
            ["preset"] = "public_chat", ["visibility"] = "public", ["name"] = "Before", ["topic"] = "Talk", ["room_alias_name"] = alias,
            ["power_level_content_override"] = new JsonObject { ["users"] = new JsonObject { [alice.UserId] = 100, [bob.UserId] = 42 } },
        });
        await bob.JoinAsync(oldRoom);
        await carol.JoinAsync(oldRoom);
        (await alice.PostAsync($"{Room(oldRoom)}/ban", new JsonObject { ["user_id"] = carol.UserId })).EnsureSuccess();

        var upgraded = (await alice.PostAsync($"{Room(oldRoom)}/upgrade", new JsonObject { ["new_version"] = "9" })).EnsureSuccess();
        var newRoom = upgraded["replacement_room"].GetValue<string>();
        await fx.SettleAsync();
        var onB = alice.On(fx.B);

        var tombstone = (await onB.GetAsync($"{Room(oldRoom)}/messages?dir=b&limit=5")).EnsureSuccess()["chunk"].AsArray()
            .Single(e => e!["type"]!.GetValue<string>() == "m.room.tombstone")!;
        Assert.Equal(newRoom, tombstone["content"]!["replacement_room"]!.GetValue<string>());
        var create = (await StateAsync(onB, newRoom, "m.room.create"))!;
        Assert.Equal("9", create["room_version"]!.GetValue<string>());
        Assert.Equal(oldRoom, create["predecessor"]!["room_id"]!.GetValue<string>());
        Assert.Equal(tombstone["event_id"]!.GetValue<string>(), create["predecessor"]!["event_id"]!.GetValue<string>());

        Assert.Equal("Before", (await StateAsync(onB, newRoom, "m.room.name"))!["name"]!.GetValue<string>());
        Assert.Equal("Talk", (await StateAsync(onB, newRoom, "m.room.topic"))!["topic"]!.GetValue<string>());
        Assert.Equal("public", (await StateAsync(onB, newRoom, "m.room.join_rules"))!["join_rule"]!.GetValue<string>());
        Assert.Equal("forbidden", (await StateAsync(onB, newRoom, "m.room.guest_access"))!["guest_access"]!.GetValue<string>());
        var levels = (await StateAsync(onB, newRoom, "m.room.power_levels"))!;
        Assert.Equal(42, levels["users"]![bob.UserId]!.GetValue<int>());
        Assert.Equal(100, levels["users"]![alice.UserId]!.GetValue<int>());
        Assert.Equal("ban", (await StateAsync(onB, newRoom, "m.room.member", carol.UserId))!["membership"]!.GetValue<string>());

        var resolved = (await onB.GetAsync($"{V3}/directory/room/{E($"#{alias}:localhost")}")).EnsureSuccess();
        Assert.Equal(newRoom, resolved["room_id"].GetValue<string>());
        Assert.Equal($"#{alias}:localhost", (await StateAsync(onB, newRoom, "m.room.canonical_alias"))!["alias"]!.GetValue<string>());
        Assert.Null((await StateAsync(onB, oldRoom, "m.room.canonical_alias"))!["alias"]);
        Assert.Equal("public", (await onB.GetAsync($"{V3}/directory/list/room/{E(newRoom)}")).EnsureSuccess()["visibility"].GetValue<string>());
        Assert.Equal("private", (await onB.GetAsync($"{V3}/directory/list/room/{E(oldRoom)}")).EnsureSuccess()["visibility"].GetValue<string>());

        // The old room: ordinary members no longer talk or invite there.
        var oldLevels = (await StateAsync(onB, oldRoom, "m.room.power_levels"))!;
        Assert.True(oldLevels["events_default"]!.GetValue<int>() >= 50);
        Assert.True(oldLevels["invite"]!.GetValue<int>() >= 50);
        Assert.Equal(403, (await bob.PutAsync($"{Room(oldRoom)}/send/m.room.message/{Guid.NewGuid():N}",
            new JsonObject { ["msgtype"] = "m.text", ["body"] = "still here?" })).StatusCode);
    }

    [Fact]
    public async Task Upgrades_are_refused_for_unknown_versions_rooms_and_members_without_power()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        await bob.JoinAsync(roomId);

        AssertError(await alice.PostAsync($"{Room(roomId)}/upgrade", new JsonObject { ["new_version"] = "my_work_of_art" }), 400, "M_UNSUPPORTED_ROOM_VERSION");
        AssertError(await alice.PostAsync($"{Room(roomId)}/upgrade", new JsonObject()), 400, "M_MISSING_PARAM");
        AssertError(await bob.PostAsync($"{Room(roomId)}/upgrade", new JsonObject { ["new_version"] = "9" }), 403, "M_FORBIDDEN");
        AssertError(await alice.PostAsync($"{Room("!bogus:localhost")}/upgrade", new JsonObject { ["new_version"] = "9" }), 404, "M_NOT_FOUND");
        AssertError(await alice.PutAsync($"{Room(roomId)}/state/m.room.tombstone/", new JsonObject { ["body"] = "x", ["replacement_room"] = roomId }), 400, "M_BAD_JSON");
    }
}

using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Http.Admin.RoomAdminCluster;

namespace Homeserver.Tests.Http.Admin;

/// <summary>
/// The read side of Synapse's room admin API (docs/admin_api/rooms.md): the room list (paging, order, search), a
/// room's details, members and state, and blocking, each refused to non-admins and for bad input as Synapse refuses.
/// </summary>
public sealed class SynapseAdminRoomTests(RoomAdminCluster fixture) : IClassFixture<RoomAdminCluster>
{
    private static string E(string s) => MatrixTestClient.Escape(s);

    [Fact]
    public async Task Non_admins_are_refused_every_rooms_admin_call()
    {
        var alice = await fixture.UserAsync("radm-nonadmin");
        var roomId = await alice.CreateRoomAsync();
        foreach (var path in new[] { $"{V1}/rooms", $"{V1}/rooms/{E(roomId)}", $"{V1}/rooms/{E(roomId)}/members", $"{V1}/rooms/{E(roomId)}/state",
                     $"{V1}/rooms/{E(roomId)}/block", $"{V2}/rooms/{E(roomId)}/delete_status", $"{V1}/event_reports", $"{V1}/event_reports/1" })
            MatrixPaths.AssertError(await alice.GetAsync(path), 403, "M_FORBIDDEN");
        MatrixPaths.AssertError(await alice.DeleteAsync($"{V2}/rooms/{E(roomId)}", new JsonObject()), 403, "M_FORBIDDEN");
        MatrixPaths.AssertError(await alice.PutAsync($"{V1}/rooms/{E(roomId)}/block", new JsonObject { ["block"] = true }), 403, "M_FORBIDDEN");
        var anonymous = new HttpClient { BaseAddress = new Uri(fixture.A.BaseUrl) };
        Assert.Equal(401, (await anonymous.GetJsonAsync($"{V1}/rooms")).StatusCode);
    }

    [Fact]
    public async Task The_room_list_pages_orders_and_searches_and_the_details_describe_the_room()
    {
        var admin = await fixture.AdminAsync();
        var alice = await fixture.UserAsync("radm-list");
        var bob = await fixture.UserAsync("radm-list-bob");
        var tag = Guid.NewGuid().ToString("N")[..10];
        var big = await alice.CreateRoomAsync(new JsonObject
        {
            ["name"] = $"Big {tag}", ["topic"] = "the topic", ["preset"] = "public_chat", ["visibility"] = "public",
            ["room_alias_name"] = $"big{tag}",
        });
        await bob.JoinAsync(big);
        var small = await alice.CreateRoomAsync(new JsonObject { ["name"] = $"Small {tag}" });

        var found = (await admin.On(fixture.B).GetAsync($"{V1}/rooms?search_term={tag}&order_by=joined_members")).EnsureSuccess();
        Assert.Equal(2, found["total_rooms"].GetValue<long>());
        Assert.Equal(0, found["offset"].GetValue<int>());
        var rooms = found["rooms"].AsArray();
        Assert.Equal([big, small], rooms.Select(r => r!["room_id"]!.GetValue<string>()));
        var first = rooms[0]!;
        Assert.Equal($"Big {tag}", first["name"]!.GetValue<string>());
        Assert.Equal($"#big{tag}:localhost", first["canonical_alias"]!.GetValue<string>());
        Assert.Equal(2, first["joined_members"]!.GetValue<long>());
        Assert.Equal(2, first["joined_local_members"]!.GetValue<long>());
        Assert.Equal(alice.UserId, first["creator"]!.GetValue<string>());
        Assert.True(first["public"]!.GetValue<bool>());
        Assert.True(first["federatable"]!.GetValue<bool>());
        Assert.Equal("public", first["join_rules"]!.GetValue<string>());
        Assert.Null(first["encryption"]);
        Assert.True(first["state_events"]!.GetValue<long>() >= 5);

        var reversed = (await admin.GetAsync($"{V1}/rooms?search_term={tag}&order_by=joined_members&dir=b")).EnsureSuccess();
        Assert.Equal([small, big], reversed["rooms"].AsArray().Select(r => r!["room_id"]!.GetValue<string>()));

        var page = (await admin.GetAsync($"{V1}/rooms?search_term={tag}&order_by=name&limit=1")).EnsureSuccess();
        Assert.Equal(big, page["rooms"][0]!["room_id"]!.GetValue<string>());
        Assert.Equal(1, page["next_batch"].GetValue<int>());
        var next = (await admin.GetAsync($"{V1}/rooms?search_term={tag}&order_by=name&limit=1&from=1")).EnsureSuccess();
        Assert.Equal(small, next["rooms"][0]!["room_id"]!.GetValue<string>());
        Assert.Equal(0, next["prev_batch"].GetValue<int>());
        Assert.Null(next.Body!["next_batch"]);

        // The alias's localpart and the exact room id match too.
        Assert.Equal(1, (await admin.GetAsync($"{V1}/rooms?search_term=big{tag}")).EnsureSuccess()["total_rooms"].GetValue<long>());
        Assert.Equal(1, (await admin.GetAsync($"{V1}/rooms?search_term={E(small)}")).EnsureSuccess()["total_rooms"].GetValue<long>());

        var details = (await admin.GetAsync($"{V1}/rooms/{E(big)}")).EnsureSuccess();
        Assert.Equal("the topic", details["topic"].GetValue<string>());
        Assert.Equal(2, details["joined_local_devices"].GetValue<long>());
        Assert.False(details["forgotten"].GetValue<bool>());
        Assert.False(details["tombstoned"].GetValue<bool>());

        var members = (await admin.GetAsync($"{V1}/rooms/{E(big)}/members")).EnsureSuccess();
        Assert.Equal(2, members["total"].GetValue<int>());
        Assert.Equal(new[] { alice.UserId, bob.UserId }.Order(StringComparer.Ordinal), members["members"].AsArray().Select(m => m!.GetValue<string>()));

        var state = (await admin.GetAsync($"{V1}/rooms/{E(big)}/state")).EnsureSuccess()["state"].AsArray();
        Assert.Contains(state, e => e!["type"]!.GetValue<string>() == "m.room.create" && e["state_key"]!.GetValue<string>() == "");
        var onlyMembers = (await admin.GetAsync($"{V1}/rooms/{E(big)}/state?type=m.room.member")).EnsureSuccess()["state"].AsArray();
        Assert.Equal(2, onlyMembers.Count);
        Assert.All(onlyMembers, e => Assert.Equal("m.room.member", e!["type"]!.GetValue<string>()));
    }

    [Fact]
    public async Task Bad_input_is_refused_as_synapse_refuses_it()
    {
        var admin = await fixture.AdminAsync();
        MatrixPaths.AssertError(await admin.GetAsync($"{V1}/rooms?order_by=colour"), 400, "M_INVALID_PARAM");
        MatrixPaths.AssertError(await admin.GetAsync($"{V1}/rooms?dir=sideways"), 400, "M_INVALID_PARAM");
        MatrixPaths.AssertError(await admin.GetAsync($"{V1}/rooms?from=-1"), 400, "M_INVALID_PARAM");
        MatrixPaths.AssertError(await admin.GetAsync($"{V1}/rooms?search_term="), 400, "M_INVALID_PARAM");
        MatrixPaths.AssertError(await admin.GetAsync($"{V1}/rooms/{E("!unknown:localhost")}"), 404, "M_NOT_FOUND");
        MatrixPaths.AssertError(await admin.GetAsync($"{V1}/rooms/{E("!unknown:localhost")}/members"), 404, "M_NOT_FOUND");
        MatrixPaths.AssertError(await admin.GetAsync($"{V1}/rooms/{E("!unknown:localhost")}/state"), 404, "M_NOT_FOUND");
        MatrixPaths.AssertError(await admin.GetAsync($"{V1}/rooms/not-a-room"), 400, "M_INVALID_PARAM");
        MatrixPaths.AssertError(await admin.DeleteAsync($"{V2}/rooms/not-a-room", new JsonObject()), 400, "M_UNKNOWN");
        MatrixPaths.AssertError(await admin.DeleteAsync($"{V2}/rooms/{E("!unknown:localhost")}", new JsonObject { ["purge"] = "yes" }), 400, "M_BAD_JSON");
        MatrixPaths.AssertError(await admin.DeleteAsync($"{V2}/rooms/{E("!unknown:localhost")}", new JsonObject { ["new_room_user_id"] = "@x:elsewhere" }), 400, "M_UNKNOWN");
        MatrixPaths.AssertError(await admin.GetAsync($"{V2}/rooms/{E("!never-deleted:localhost")}/delete_status"), 404, "M_NOT_FOUND");
        MatrixPaths.AssertError(await admin.GetAsync($"{V2}/rooms/delete_status/nosuchid"), 404, "M_NOT_FOUND");
        MatrixPaths.AssertError(await admin.PutAsync($"{V1}/rooms/{E("!unknown:localhost")}/block", new JsonObject()), 400, "M_MISSING_PARAM");
        MatrixPaths.AssertError(await admin.PutAsync($"{V1}/rooms/{E("!unknown:localhost")}/block", new JsonObject { ["block"] = 1 }), 400, "M_BAD_JSON");
    }

    [Fact]
    public async Task A_blocked_room_refuses_joins_and_invites_until_unblocked()
    {
        var admin = await fixture.AdminAsync();
        var alice = await fixture.UserAsync("radm-block");
        var bob = await fixture.UserAsync("radm-block-bob", fixture.B);
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });

        Assert.False((await admin.GetAsync($"{V1}/rooms/{E(roomId)}/block")).EnsureSuccess()["block"].GetValue<bool>());
        Assert.True((await admin.PutAsync($"{V1}/rooms/{E(roomId)}/block", new JsonObject { ["block"] = true })).EnsureSuccess()["block"].GetValue<bool>());
        var status = (await admin.On(fixture.B).GetAsync($"{V1}/rooms/{E(roomId)}/block")).EnsureSuccess();
        Assert.True(status["block"].GetValue<bool>());
        Assert.Equal(admin.UserId, status["user_id"].GetValue<string>());

        await fixture.SettleAsync();
        var join = await bob.PostAsync($"{MatrixPaths.V3}/join/{E(roomId)}");
        Assert.Equal(403, join.StatusCode);
        Assert.Contains("blocked", join.Text);
        Assert.Equal(403, (await alice.PostAsync($"{MatrixPaths.Room(roomId)}/invite", new JsonObject { ["user_id"] = bob.UserId })).StatusCode);

        Assert.False((await admin.PutAsync($"{V1}/rooms/{E(roomId)}/block", new JsonObject { ["block"] = false })).EnsureSuccess()["block"].GetValue<bool>());
        await fixture.SettleAsync();
        (await bob.PostAsync($"{MatrixPaths.V3}/join/{E(roomId)}")).EnsureSuccess();
    }
}

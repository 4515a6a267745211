using System.Text.Json.Nodes;
using Homeserver.Tests.Http.Keys;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Http.Keys.Api;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.Directory;

/// <summary>Room aliases, canonical alias checks, directory visibility and /publicRooms over two silos.</summary>
[Collection(KeysCollection.Name)]
public sealed class DirectoryTests(KeysCluster fx)
{
    private static string AliasPath(string alias) => $"{V3}/directory/room/{MatrixTestClient.Escape(alias)}";
    private static string ListPath(string roomId) => $"{V3}/directory/list/room/{MatrixTestClient.Escape(roomId)}";
    private static string NewAlias(string prefix = "a") => $"#{prefix}{Guid.NewGuid():N}:localhost";

    [Fact]
    public async Task An_alias_resolves_on_the_other_silo_and_cannot_be_taken_twice()
    {
        var alice = await fx.UserAsync("alice");
        var stranger = await fx.UserAsync("stranger");
        var roomId = await alice.CreateRoomAsync();
        var alias = NewAlias();
        (await alice.PutAsync(AliasPath(alias), new JsonObject { ["room_id"] = roomId })).EnsureSuccess();

        var resolved = (await fx.B.Http.GetJsonAsync(AliasPath(alias))).EnsureSuccess();
        Assert.Equal(roomId, resolved["room_id"].GetValue<string>());
        Assert.Equal(["localhost"], Strings(resolved["servers"]));

        AssertError(await alice.On(fx.B).PutAsync(AliasPath(alias), new JsonObject { ["room_id"] = roomId }), 409, "M_UNKNOWN");
        AssertError(await stranger.PutAsync(AliasPath(NewAlias()), new JsonObject { ["room_id"] = roomId }), 403, "M_FORBIDDEN");
        AssertError(await alice.PutAsync(AliasPath("#x:elsewhere.org"), new JsonObject { ["room_id"] = roomId }), 400, "M_UNKNOWN");
        AssertError(await alice.PutAsync(AliasPath("notanalias"), new JsonObject { ["room_id"] = roomId }), 400, "M_INVALID_PARAM");
        AssertError(await alice.PutAsync(AliasPath(NewAlias()), new JsonObject()), 400, "M_MISSING_PARAM");
        AssertError(await alice.PutAsync(AliasPath(NewAlias()), new JsonObject { ["room_id"] = "nope" }), 400, "M_INVALID_PARAM");
        AssertError(await fx.A.Http.PutJsonAsync(AliasPath(NewAlias()), new JsonObject { ["room_id"] = roomId }), 401, "M_MISSING_TOKEN");
        AssertError(await fx.A.Http.GetJsonAsync(AliasPath(NewAlias())), 404, "M_NOT_FOUND");

        var aliases = (await alice.On(fx.B).GetAsync($"{Room(roomId)}/aliases")).EnsureSuccess();
        Assert.Contains(alias, Strings(aliases["aliases"]));
        AssertError(await stranger.GetAsync($"{Room(roomId)}/aliases"), 403, "M_FORBIDDEN");
    }

    [Fact]
    public async Task Aliases_are_deleted_by_their_creator_or_a_room_admin_only()
    {
        var admin = await fx.UserAsync("admin");
        var member = await fx.UserAsync("member");
        var other = await fx.UserAsync("other");
        var roomId = await admin.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        await member.JoinAsync(roomId);
        await other.JoinAsync(roomId);
        var byMember = NewAlias();
        var byMember2 = NewAlias();
        (await member.PutAsync(AliasPath(byMember), new JsonObject { ["room_id"] = roomId })).EnsureSuccess();
        (await member.PutAsync(AliasPath(byMember2), new JsonObject { ["room_id"] = roomId })).EnsureSuccess();

        AssertError(await other.DeleteAsync(AliasPath(byMember)), 403, "M_FORBIDDEN");
        (await member.On(fx.B).DeleteAsync(AliasPath(byMember))).EnsureSuccess();
        AssertError(await fx.A.Http.GetJsonAsync(AliasPath(byMember)), 404, "M_NOT_FOUND");
        (await admin.DeleteAsync(AliasPath(byMember2))).EnsureSuccess();
        AssertError(await admin.DeleteAsync(AliasPath(byMember2)), 404, "M_NOT_FOUND");
        AssertError(await admin.DeleteAsync(AliasPath("#x:elsewhere.org")), 400, "M_UNKNOWN");
    }

    [Fact]
    public async Task A_canonical_alias_must_point_to_the_room()
    {
        var alice = await fx.UserAsync("alice");
        var roomId = await alice.CreateRoomAsync();
        var otherRoom = await alice.CreateRoomAsync();
        var mine = NewAlias();
        var theirs = NewAlias();
        (await alice.PutAsync(AliasPath(mine), new JsonObject { ["room_id"] = roomId })).EnsureSuccess();
        (await alice.PutAsync(AliasPath(theirs), new JsonObject { ["room_id"] = otherRoom })).EnsureSuccess();
        var path = $"{Room(roomId)}/state/m.room.canonical_alias";

        AssertError(await alice.PutAsync(path, new JsonObject { ["alias"] = theirs }), 400, "M_BAD_ALIAS");
        AssertError(await alice.PutAsync(path, new JsonObject { ["alias"] = NewAlias() }), 400, "M_BAD_ALIAS");
        AssertError(await alice.PutAsync(path, new JsonObject { ["alias"] = mine, ["alt_aliases"] = new JsonArray(theirs) }), 400, "M_BAD_ALIAS");
        AssertError(await alice.PutAsync(path, new JsonObject { ["alias"] = "bad" }), 400, "M_INVALID_PARAM");
        (await alice.PutAsync(path, new JsonObject { ["alias"] = mine, ["alt_aliases"] = new JsonArray(mine) })).EnsureSuccess();
        Assert.Equal(mine, (await alice.On(fx.B).GetAsync(path)).EnsureSuccess()["alias"].GetValue<string>());
    }

    [Fact]
    public async Task Deleting_an_alias_removes_it_from_the_canonical_alias_event()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        await bob.JoinAsync(roomId);
        var main = NewAlias("main");
        var alt = NewAlias("alt");
        var bobs = NewAlias("bob");
        foreach (var (user, alias) in new[] { (alice, main), (alice, alt), (bob, bobs) })
            (await user.PutAsync(AliasPath(alias), new JsonObject { ["room_id"] = roomId })).EnsureSuccess();
        var path = $"{Room(roomId)}/state/m.room.canonical_alias";
        (await alice.PutAsync(path, new JsonObject { ["alias"] = main, ["alt_aliases"] = new JsonArray(alt, bobs) })).EnsureSuccess();

        // Deleted on silo B: the room's next canonical alias event leaves it out, and a read on B sees it at once.
        (await alice.On(fx.B).DeleteAsync(AliasPath(alt))).EnsureSuccess();
        var after = (await alice.On(fx.B).GetAsync(path)).EnsureSuccess();
        Assert.Equal(main, after["alias"].GetValue<string>());
        Assert.Equal([bobs], Strings(after["alt_aliases"]));

        (await alice.DeleteAsync(AliasPath(main))).EnsureSuccess();
        after = (await alice.GetAsync(path)).EnsureSuccess();
        Assert.Null(after.Body!["alias"]);
        Assert.Equal([bobs], Strings(after["alt_aliases"]));

        // Bob may delete the alias he made but not send the state event (power level 50): the alias goes, the entry stays.
        (await bob.DeleteAsync(AliasPath(bobs))).EnsureSuccess();
        AssertError(await fx.A.Http.GetJsonAsync(AliasPath(bobs)), 404, "M_NOT_FOUND");
        Assert.Equal([bobs], Strings((await alice.GetAsync(path)).EnsureSuccess()["alt_aliases"]));

        // An alias the event does not name sends nothing.
        var unnamed = NewAlias("unnamed");
        (await alice.PutAsync(AliasPath(unnamed), new JsonObject { ["room_id"] = roomId })).EnsureSuccess();
        var before = (await alice.SyncAsync()).NextBatch();
        (await alice.DeleteAsync(AliasPath(unnamed))).EnsureSuccess();
        Assert.Empty((await alice.SyncAsync(before)).RoomEvents(roomId, "timeline"));
    }

    [Fact]
    public async Task Directory_visibility_follows_createRoom_and_only_admins_change_it()
    {
        var admin = await fx.UserAsync("admin");
        var member = await fx.UserAsync("member");
        var roomId = await admin.CreateRoomAsync(new JsonObject { ["visibility"] = "public" });
        await member.JoinAsync(roomId);
        Assert.Equal("public", (await fx.B.Http.GetJsonAsync(ListPath(roomId))).EnsureSuccess()["visibility"].GetValue<string>());

        AssertError(await member.PutAsync(ListPath(roomId), new JsonObject { ["visibility"] = "private" }), 403, "M_FORBIDDEN");
        (await admin.On(fx.B).PutAsync(ListPath(roomId), new JsonObject { ["visibility"] = "private" })).EnsureSuccess();
        Assert.Equal("private", (await fx.A.Http.GetJsonAsync(ListPath(roomId))).EnsureSuccess()["visibility"].GetValue<string>());
        AssertError(await admin.PutAsync(ListPath(roomId), new JsonObject { ["visibility"] = "secret" }), 400, "M_INVALID_PARAM");
        AssertError(await admin.PutAsync(ListPath("!unknown:localhost"), new JsonObject { ["visibility"] = "public" }), 404, "M_NOT_FOUND");
        AssertError(await fx.A.Http.GetJsonAsync(ListPath("!unknown:localhost")), 404, "M_NOT_FOUND");
        Assert.Equal("private", (await admin.GetAsync(ListPath(await admin.CreateRoomAsync()))).EnsureSuccess()["visibility"].GetValue<string>());
    }

    [Fact]
    public async Task Public_rooms_are_listed_searched_and_paged()
    {
        var marker = Guid.NewGuid().ToString("N")[..10];
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        var big = await alice.CreateRoomAsync(new JsonObject
        {
            ["visibility"] = "public", ["preset"] = "public_chat", ["name"] = $"Big {marker}", ["topic"] = "Lots of people",
            ["room_alias_name"] = $"big{marker}",
        });
        await bob.JoinAsync(big);
        var small = await alice.CreateRoomAsync(new JsonObject { ["visibility"] = "public", ["preset"] = "public_chat", ["topic"] = $"about {marker}" });
        var unlisted = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat", ["name"] = $"Unlisted {marker}" });
        var inviteOnly = await alice.CreateRoomAsync(new JsonObject { ["visibility"] = "public", ["preset"] = "private_chat", ["name"] = $"Invite {marker}" });

        var all = (await bob.On(fx.B).PostAsync($"{V3}/publicRooms", new JsonObject { ["filter"] = new JsonObject { ["generic_search_term"] = marker.ToUpperInvariant() } })).EnsureSuccess();
        var chunk = all["chunk"].AsArray();
        Assert.Equal([big, small], chunk.Select(r => r!["room_id"]!.GetValue<string>()));
        Assert.Equal(2, all["total_room_count_estimate"].GetValue<int>());
        var entry = chunk[0]!;
        Assert.Equal($"Big {marker}", entry["name"]!.GetValue<string>());
        Assert.Equal("Lots of people", entry["topic"]!.GetValue<string>());
        Assert.Equal($"#big{marker}:localhost", entry["canonical_alias"]!.GetValue<string>());
        Assert.Equal(2, entry["num_joined_members"]!.GetValue<int>());
        Assert.Equal("public", entry["join_rule"]!.GetValue<string>());
        Assert.False(entry["world_readable"]!.GetValue<bool>());
        Assert.False(entry["guest_can_join"]!.GetValue<bool>());
        Assert.DoesNotContain(chunk, r => r!["room_id"]!.GetValue<string>() == unlisted || r["room_id"]!.GetValue<string>() == inviteOnly);

        var first = (await alice.PostAsync($"{V3}/publicRooms", new JsonObject { ["limit"] = 1, ["filter"] = new JsonObject { ["generic_search_term"] = marker } })).EnsureSuccess();
        Assert.Equal(big, Assert.Single(first["chunk"].AsArray())!["room_id"]!.GetValue<string>());
        Assert.Null(first.Body!["prev_batch"]);
        var next = first["next_batch"].GetValue<string>();
        var second = (await alice.PostAsync($"{V3}/publicRooms", new JsonObject { ["limit"] = 1, ["since"] = next, ["filter"] = new JsonObject { ["generic_search_term"] = marker } })).EnsureSuccess();
        Assert.Equal(small, Assert.Single(second["chunk"].AsArray())!["room_id"]!.GetValue<string>());
        Assert.Null(second.Body!["next_batch"]);
        Assert.NotNull(second.Body!["prev_batch"]);

        // GET needs no token.
        var paged = (await fx.A.Http.GetJsonAsync($"{V3}/publicRooms?limit=1")).EnsureSuccess();
        Assert.Single(paged["chunk"].AsArray());
        Assert.NotNull(paged.Body!["next_batch"]);

        // Unpublishing takes a room out of the list.
        (await alice.PutAsync(ListPath(small), new JsonObject { ["visibility"] = "private" })).EnsureSuccess();
        var anonymous = (await fx.B.Http.GetJsonAsync($"{V3}/publicRooms")).EnsureSuccess();
        var ids = anonymous["chunk"].AsArray().Select(r => r!["room_id"]!.GetValue<string>()).ToList();
        Assert.Contains(big, ids);
        Assert.DoesNotContain(small, ids);

        AssertError(await fx.A.Http.PostJsonAsync($"{V3}/publicRooms", new JsonObject()), 401, "M_MISSING_TOKEN");
        AssertError(await alice.PostAsync($"{V3}/publicRooms", new JsonObject { ["since"] = "garbage" }), 400, "M_INVALID_PARAM");
        AssertError(await alice.PostAsync($"{V3}/publicRooms", new JsonObject { ["limit"] = "ten" }), 400, "M_INVALID_PARAM");
        AssertError(await fx.A.Http.GetJsonAsync($"{V3}/publicRooms?limit=x"), 400, "M_INVALID_PARAM");
    }
}

using System.Text.Json.Nodes;
using Homeserver.Tests.Http.Keys;
using Homeserver.Tests.Infrastructure;
using Npgsql;
using static Homeserver.Tests.Http.Keys.Api;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.Profile;

/// <summary>
/// POST /user_directory/search over two silos, as Synapse answers it by default (search_all_users: false): room mates
/// and members of rooms anyone may join or read, following join rules, history visibility and memberships as they
/// change. Every search term is a marker only this test's users carry, so rooms of other tests do not interfere.
/// </summary>
[Collection(KeysCollection.Name)]
public sealed class UserDirectoryTests(KeysCluster fx)
{
    private static string ProfilePath(string userId) => $"{V3}/profile/{MatrixTestClient.Escape(userId)}";

    private static string NewMarker() => Guid.NewGuid().ToString("N")[..10];

    private static async Task<List<string>> FoundAsync(MatrixTestClient searcher, string term) =>
        (await searcher.PostAsync($"{V3}/user_directory/search", new JsonObject { ["search_term"] = term, ["limit"] = 50 }))
        .EnsureSuccess()["results"].AsArray().Select(r => r!["user_id"]!.GetValue<string>()).ToList();

    private static async Task SetStateAsync(MatrixTestClient sender, string roomId, string type, string field, string value) =>
        (await sender.PutAsync($"{Room(roomId)}/state/{type}", new JsonObject { [field] = value })).EnsureSuccess();

    [Fact]
    public async Task Room_mates_and_public_room_members_are_found_with_their_names_and_a_limit()
    {
        var marker = Guid.NewGuid().ToString("N")[..8];
        var alice = await fx.UserAsync("alice");
        var mate = await fx.UserAsync($"mate{marker}");
        var publicUser = await fx.UserAsync("pub");
        var hidden = await fx.UserAsync($"hidden{marker}");
        await SharedRoomAsync(alice, mate);
        (await publicUser.PutAsync($"{ProfilePath(publicUser.UserId)}/displayname", new JsonObject { ["displayname"] = $"Public {marker.ToUpperInvariant()}" })).EnsureSuccess();
        await publicUser.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        await hidden.CreateRoomAsync(new JsonObject { ["preset"] = "private_chat" });

        var search = (await alice.On(fx.B).PostAsync($"{V3}/user_directory/search", new JsonObject { ["search_term"] = marker })).EnsureSuccess();
        var found = search["results"].AsArray().Select(r => r!["user_id"]!.GetValue<string>()).ToList();
        Assert.Contains(mate.UserId, found);
        Assert.Contains(publicUser.UserId, found);
        Assert.DoesNotContain(hidden.UserId, found);
        Assert.False(search["limited"].GetValue<bool>());
        var pub = search["results"].AsArray().Single(r => r!["user_id"]!.GetValue<string>() == publicUser.UserId)!;
        Assert.Equal($"Public {marker.ToUpperInvariant()}", pub["display_name"]!.GetValue<string>());

        var limited = (await alice.PostAsync($"{V3}/user_directory/search", new JsonObject { ["search_term"] = marker, ["limit"] = 1 })).EnsureSuccess();
        Assert.Single(limited["results"].AsArray());
        Assert.True(limited["limited"].GetValue<bool>());

        AssertError(await alice.PostAsync($"{V3}/user_directory/search", new JsonObject()), 400, "M_MISSING_PARAM");
        AssertError(await alice.PostAsync($"{V3}/user_directory/search", new JsonObject { ["search_term"] = "x", ["limit"] = "many" }), 400, "M_INVALID_PARAM");
        AssertError(await fx.A.Http.PostJsonAsync($"{V3}/user_directory/search", new JsonObject { ["search_term"] = "x" }), 401, "M_MISSING_TOKEN");
    }

    [Fact]
    public async Task A_stranger_is_found_only_while_joined_to_a_room_shared_with_the_searcher()
    {
        var marker = NewMarker();
        var searcher = await fx.UserAsync("searcher");
        var target = await fx.UserAsync($"t{marker}", fx.B);
        // Both are joined to rooms, just not the same one, and neither room is public.
        await searcher.CreateRoomAsync(new JsonObject { ["preset"] = "private_chat" });
        await target.CreateRoomAsync(new JsonObject { ["preset"] = "private_chat" });
        Assert.DoesNotContain(target.UserId, await FoundAsync(searcher, marker));

        var shared = await searcher.CreateRoomAsync(new JsonObject { ["preset"] = "private_chat", ["invite"] = new JsonArray(target.UserId) });
        // An invite is not a shared room: Synapse counts joined members only.
        Assert.DoesNotContain(target.UserId, await FoundAsync(searcher.On(fx.B), marker));
        await target.JoinAsync(shared);
        Assert.Contains(target.UserId, await FoundAsync(searcher, marker));
        Assert.Contains(target.UserId, await FoundAsync(searcher.On(fx.B), marker));
        // The other way round too, by the display name this time.
        (await searcher.PutAsync($"{V3}/profile/{E(searcher.UserId)}/displayname", new JsonObject { ["displayname"] = $"Seeker {marker}" })).EnsureSuccess();
        Assert.Contains(searcher.UserId, await FoundAsync(target, $"seeker {marker}"));

        (await target.On(fx.B).PostAsync($"{Room(shared)}/leave", new JsonObject())).EnsureSuccess();
        Assert.DoesNotContain(target.UserId, await FoundAsync(searcher, marker));
        Assert.DoesNotContain(searcher.UserId, await FoundAsync(target, marker));
    }

    [Fact]
    public async Task A_member_of_a_public_room_is_found_by_anyone_until_they_leave()
    {
        var marker = NewMarker();
        var member = await fx.UserAsync($"p{marker}");
        var anyone = await fx.UserAsync("anyone", fx.B);
        var room = await member.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        Assert.Contains(member.UserId, await FoundAsync(anyone, marker));
        // A public room counts for its members themselves too (Synapse's users_in_public_rooms).
        Assert.Contains(member.UserId, await FoundAsync(member, marker));

        (await member.PostAsync($"{Room(room)}/leave", new JsonObject())).EnsureSuccess();
        Assert.DoesNotContain(member.UserId, await FoundAsync(anyone, marker));
        Assert.DoesNotContain(member.UserId, await FoundAsync(member, marker));
    }

    [Fact]
    public async Task Members_appear_and_disappear_as_the_join_rule_changes()
    {
        var marker = NewMarker();
        var creator = await fx.UserAsync("creator");
        var member = await fx.UserAsync($"j{marker}", fx.B);
        var outsider = await fx.UserAsync("outsider");
        var room = await creator.CreateRoomAsync(new JsonObject { ["preset"] = "private_chat", ["invite"] = new JsonArray(member.UserId) });
        await member.JoinAsync(room);
        Assert.DoesNotContain(member.UserId, await FoundAsync(outsider, marker));
        // In a private room a user does not find themself (SyTest 52user-directory/01public.pl).
        Assert.DoesNotContain(member.UserId, await FoundAsync(member, marker));

        await SetStateAsync(creator, room, "m.room.join_rules", "join_rule", "public");
        Assert.Contains(member.UserId, await FoundAsync(outsider, marker));
        Assert.Contains(member.UserId, await FoundAsync(outsider.On(fx.B), marker));
        Assert.Contains(member.UserId, await FoundAsync(member, marker));

        await SetStateAsync(creator.On(fx.B), room, "m.room.join_rules", "join_rule", "invite");
        Assert.DoesNotContain(member.UserId, await FoundAsync(outsider, marker));
        Assert.DoesNotContain(member.UserId, await FoundAsync(outsider.On(fx.B), marker));
        // The room mate still finds them: it is still a shared room.
        Assert.Contains(member.UserId, await FoundAsync(creator, marker));

        await SetStateAsync(creator, room, "m.room.join_rules", "join_rule", "public");
        Assert.Contains(member.UserId, await FoundAsync(outsider.On(fx.B), marker));
    }

    [Fact]
    public async Task World_readable_history_keeps_members_visible_whatever_the_join_rule()
    {
        var marker = NewMarker();
        var creator = await fx.UserAsync("creator");
        var member = await fx.UserAsync($"h{marker}", fx.B);
        var outsider = await fx.UserAsync("outsider");
        var room = await creator.CreateRoomAsync(new JsonObject { ["preset"] = "private_chat", ["invite"] = new JsonArray(member.UserId) });
        await member.JoinAsync(room);
        Assert.DoesNotContain(member.UserId, await FoundAsync(outsider, marker));

        await SetStateAsync(creator, room, "m.room.history_visibility", "history_visibility", "world_readable");
        Assert.Contains(member.UserId, await FoundAsync(outsider, marker));
        await SetStateAsync(creator, room, "m.room.join_rules", "join_rule", "public");
        await SetStateAsync(creator.On(fx.B), room, "m.room.join_rules", "join_rule", "invite");
        Assert.Contains(member.UserId, await FoundAsync(outsider.On(fx.B), marker));

        await SetStateAsync(creator, room, "m.room.history_visibility", "history_visibility", "shared");
        Assert.DoesNotContain(member.UserId, await FoundAsync(outsider, marker));
        Assert.DoesNotContain(member.UserId, await FoundAsync(outsider.On(fx.B), marker));
    }

    [Fact]
    public async Task Deactivated_users_are_never_found()
    {
        var marker = NewMarker();
        var searcher = await fx.UserAsync("searcher");
        var leaver = await fx.UserAsync($"d{marker}");
        var stuck = await fx.UserAsync($"s{marker}", fx.B);
        var publicRoom = await searcher.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        var privateRoom = await searcher.CreateRoomAsync(new JsonObject { ["preset"] = "private_chat", ["invite"] = new JsonArray(stuck.UserId) });
        await leaver.JoinAsync(publicRoom);
        await stuck.JoinAsync(publicRoom);
        await stuck.JoinAsync(privateRoom);
        Assert.Equal(new[] { leaver.UserId, stuck.UserId }.Order(StringComparer.Ordinal), (await FoundAsync(searcher, marker)).Order(StringComparer.Ordinal));

        (await leaver.PostAsync($"{V3}/account/deactivate", new JsonObject
        {
            ["auth"] = new JsonObject
            {
                ["type"] = "m.login.password",
                ["identifier"] = new JsonObject { ["type"] = "m.id.user", ["user"] = leaver.UserId },
                ["password"] = leaver.Password,
            },
        })).EnsureSuccess();
        Assert.DoesNotContain(leaver.UserId, await FoundAsync(searcher.On(fx.B), marker));

        // A deactivation sets the flag first and leaves the rooms after; one cut short in between leaves the account
        // joined, and it must not be found all the same (neither through the public room nor the shared one).
        await using (var cmd = fx.A.Get<NpgsqlDataSource>().CreateCommand("UPDATE users SET deactivated = true, password_hash = NULL WHERE user_id = $1"))
        {
            cmd.Parameters.AddWithValue(stuck.UserId);
            Assert.Equal(1, await cmd.ExecuteNonQueryAsync());
        }
        Assert.Empty(await FoundAsync(searcher, marker));
        Assert.Empty(await FoundAsync(searcher.On(fx.B), marker));
    }
}

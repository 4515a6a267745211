using System.Text.Json.Nodes;
using Homeserver.Caches;
using Homeserver.Rooms;
using Homeserver.Tests.Infrastructure;
using Orleans.Runtime;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.Sync;

/// <summary>
/// A sync from scratch reads every joined room's window and state at once and derives the state where each window
/// starts from the room's current state (issue 13). What it answers must be what reading each room on its own
/// answered: the state before the window holds the versions the window's state events replaced, and it stays the
/// same when the room's cached state is evicted and its grain deactivated and loaded again.
/// </summary>
public sealed class InitialSyncTests(InitialSyncTests.Fixture fixture) : IClassFixture<InitialSyncTests.Fixture>
{
    public sealed class Fixture : TwoSiloCluster;

    private HomeserverTestCluster Cluster => fixture.Cluster;

    private static string Filter(int limit, bool lazy) => Uri.EscapeDataString(new JsonObject
    {
        ["room"] = new JsonObject
        {
            ["timeline"] = new JsonObject { ["limit"] = limit },
            ["state"] = new JsonObject { ["lazy_load_members"] = lazy },
        },
    }.ToJsonString());

    private static JsonArray State(JsonNode sync, string roomId) => sync["rooms"]!["join"]![roomId]!["state"]!["events"]!.AsArray();

    private static JsonNode? StateEvent(JsonNode sync, string roomId, string type, string stateKey) =>
        State(sync, roomId).FirstOrDefault(e => e!["type"]!.GetValue<string>() == type && e["state_key"]!.GetValue<string>() == stateKey);

    private static string[] TimelineIds(JsonNode sync, string roomId) =>
        sync["rooms"]!["join"]![roomId]!["timeline"]!["events"]!.AsArray().Select(e => e!["event_id"]!.GetValue<string>()).ToArray();

    private static string[] StateIds(JsonNode sync, string roomId) =>
        State(sync, roomId).Select(e => e!["event_id"]!.GetValue<string>()).Order(StringComparer.Ordinal).ToArray();

    [Fact]
    public async Task The_state_before_a_window_holds_what_the_windows_state_events_replaced_in_every_room()
    {
        var alice = await fixture.UserAsync("alice");
        var bob = await fixture.UserAsync("bob", fixture.B);
        var changed = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat", ["name"] = "first" });
        var quiet = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat", ["name"] = "quiet" });
        await bob.JoinAsync(changed);
        await bob.JoinAsync(quiet);
        for (var i = 0; i < 3; i++) await alice.SendTextAsync(quiet, $"nothing changes here {i}");
        (await alice.PutAsync($"{V3}/rooms/{E(changed)}/state/m.room.name/", new JsonObject { ["name"] = "second" })).EnsureSuccess();
        (await bob.PutAsync($"{V3}/rooms/{E(changed)}/state/m.room.member/{E(bob.UserId)}",
            new JsonObject { ["membership"] = "join", ["displayname"] = "Bobby" })).EnsureSuccess();
        await alice.SendTextAsync(changed, "hello");

        foreach (var silo in Cluster.Silos)
        {
            var sync = (await alice.On(silo).GetAsync($"{V3}/sync?filter={Filter(3, lazy: false)}")).EnsureSuccess().Body!;
            // The window is the rename, Bob's new display name and the message; the state is from before them.
            Assert.Equal(3, TimelineIds(sync, changed).Length);
            Assert.Equal("first", StateEvent(sync, changed, "m.room.name", "")!["content"]!["name"]!.GetValue<string>());
            var bobBefore = StateEvent(sync, changed, "m.room.member", bob.UserId)!;
            Assert.Equal("join", bobBefore["content"]!["membership"]!.GetValue<string>());
            Assert.NotEqual("Bobby", bobBefore["content"]!["displayname"]?.GetValue<string>());
            Assert.Equal(State(sync, changed).Count, State(sync, changed).Select(e => (e!["type"]!.GetValue<string>(), e["state_key"]!.GetValue<string>())).Distinct().Count());
            // A room whose window holds no state change gets its whole current state.
            Assert.Equal("quiet", StateEvent(sync, quiet, "m.room.name", "")!["content"]!["name"]!.GetValue<string>());
            Assert.NotNull(StateEvent(sync, quiet, "m.room.member", alice.UserId));
            Assert.NotNull(StateEvent(sync, quiet, "m.room.member", bob.UserId));

            // Lazily: the message's sender only (and the user), with the state as the window (the message) starts.
            var lazy = (await alice.On(silo).GetAsync($"{V3}/sync?filter={Filter(1, lazy: true)}")).EnsureSuccess().Body!;
            Assert.Equal("second", StateEvent(lazy, changed, "m.room.name", "")!["content"]!["name"]!.GetValue<string>());
            var members = State(lazy, changed).Where(e => e!["type"]!.GetValue<string>() == "m.room.member").Select(e => e!["state_key"]!.GetValue<string>()).ToArray();
            Assert.Equal([alice.UserId], members);
            Assert.Equal(2, lazy["rooms"]!["join"]![changed]!["summary"]!["m.joined_member_count"]!.GetValue<int>());
        }
    }

    [Fact]
    public async Task A_room_whose_grain_was_deactivated_and_state_evicted_answers_the_same()
    {
        var alice = await fixture.UserAsync("alice");
        var bob = await fixture.UserAsync("bob", fixture.B);
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat", ["name"] = "reloaded" });
        await bob.JoinAsync(roomId);
        (await alice.PutAsync($"{V3}/rooms/{E(roomId)}/state/m.room.topic/", new JsonObject { ["topic"] = "before" })).EnsureSuccess();
        await bob.SendTextAsync(roomId, "one");
        var before = (await alice.GetAsync($"{V3}/sync?filter={Filter(2, lazy: false)}")).EnsureSuccess().Body!;

        // Every silo forgets the room: its grain leaves memory, and so does its cached state.
        var management = Cluster.Silos[0].Grains.GetGrain<IManagementGrain>(0);
        await management.ForceActivationCollection(TimeSpan.Zero);
        var rooms = await management.GetSimpleGrainStatistics();
        Assert.DoesNotContain(rooms, s => s.GrainType.EndsWith("." + nameof(RoomGrain), StringComparison.Ordinal) && s.ActivationCount > 0);
        foreach (var silo in Cluster.Silos)
        {
            var cache = RoomCaches.CurrentStates(silo.Get<CacheRegistry>());
            cache.InvalidateAll();
            Assert.False(cache.TryGet(roomId, out _));
        }

        var after = (await alice.GetAsync($"{V3}/sync?filter={Filter(2, lazy: false)}")).EnsureSuccess().Body!;
        Assert.Equal(TimelineIds(before, roomId), TimelineIds(after, roomId));
        Assert.Equal(StateIds(before, roomId), StateIds(after, roomId));

        // The grain loaded again writes on the state it had: Alice may still set the topic, Bob is still a member.
        (await alice.PutAsync($"{V3}/rooms/{E(roomId)}/state/m.room.topic/", new JsonObject { ["topic"] = "after" })).EnsureSuccess();
        AssertError(await bob.PutAsync($"{V3}/rooms/{E(roomId)}/state/m.room.topic/", new JsonObject { ["topic"] = "bob's" }), 403, "M_FORBIDDEN");
        await bob.SendTextAsync(roomId, "two");
        var then = (await alice.GetAsync($"{V3}/sync?filter={Filter(2, lazy: false)}")).EnsureSuccess().Body!;
        Assert.Equal("after", then["rooms"]!["join"]![roomId]!["timeline"]!["events"]![0]!["content"]!["topic"]!.GetValue<string>());
        Assert.Equal("before", StateEvent(then, roomId, "m.room.topic", "")!["content"]!["topic"]!.GetValue<string>());
        Assert.Equal(2, then["rooms"]!["join"]![roomId]!["summary"]!["m.joined_member_count"]!.GetValue<int>());
    }

    private static JsonNode Room(JsonNode sync, string roomId) => sync["rooms"]!["join"]![roomId]!;

    private static string[] MemberKeys(JsonNode sync, string roomId) =>
        State(sync, roomId).Where(e => e!["type"]!.GetValue<string>() == "m.room.member").Select(e => e!["state_key"]!.GetValue<string>())
            .Order(StringComparer.Ordinal).ToArray();

    [Fact]
    public async Task A_lazy_sync_from_scratch_without_the_rooms_states_cached_counts_members_and_unread_as_with_them()
    {
        var alice = await fixture.UserAsync("alice");
        var bob = await fixture.UserAsync("bob", fixture.B);
        var carol = await fixture.UserAsync("carol");
        var dave = await fixture.UserAsync("dave", fixture.B);
        var erin = await fixture.UserAsync("erin");
        var unnamed = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        var named = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat", ["name"] = "named" });
        foreach (var member in new[] { bob, carol, erin }) await member.JoinAsync(unnamed);
        await bob.JoinAsync(named);
        (await erin.PostAsync($"{V3}/rooms/{E(unnamed)}/leave", new JsonObject())).EnsureSuccess();
        (await alice.PostAsync($"{V3}/rooms/{E(unnamed)}/invite", new JsonObject { ["user_id"] = dave.UserId })).EnsureSuccess();
        var before = (await alice.GetAsync($"{V3}/sync?filter={Filter(1, lazy: false)}")).EnsureSuccess().Body!;
        var displayName = StateEvent(before, unnamed, "m.room.member", alice.UserId)!["content"]!["displayname"]!.GetValue<string>();
        await bob.SendTextAsync(unnamed, $"hello {displayName}");
        await bob.SendTextAsync(unnamed, "and again");
        await bob.SendTextAsync(named, "in the named room");

        foreach (var silo in Cluster.Silos)
        {
            foreach (var s in Cluster.Silos) RoomCaches.CurrentStates(s.Get<CacheRegistry>()).InvalidateAll();
            var cold = (await alice.On(silo).GetAsync($"{V3}/sync?filter={Filter(1, lazy: true)}")).EnsureSuccess().Body!;
            // Only the sender's and the user's member events; the others are counted, not sent.
            Assert.Equal(new[] { alice.UserId, bob.UserId }.Order(StringComparer.Ordinal), MemberKeys(cold, unnamed));
            var summary = Room(cold, unnamed)["summary"]!;
            Assert.Equal(3, summary["m.joined_member_count"]!.GetValue<int>());
            Assert.Equal(1, summary["m.invited_member_count"]!.GetValue<int>());
            Assert.Equal(new[] { bob.UserId, carol.UserId, dave.UserId }.Order(StringComparer.Ordinal),
                summary["m.heroes"]!.AsArray().Select(h => h!.GetValue<string>()));
            Assert.Null(Room(cold, named)["summary"]!["m.heroes"]);
            Assert.Equal(2, Room(cold, named)["summary"]!["m.joined_member_count"]!.GetValue<int>());
            // Unread counts read the user's display name and the room's power levels from the partial state.
            Assert.Equal(2, Room(cold, unnamed)["unread_notifications"]!["notification_count"]!.GetValue<long>());
            Assert.Equal(1, Room(cold, unnamed)["unread_notifications"]!["highlight_count"]!.GetValue<long>());
            Assert.Equal(1, Room(cold, named)["unread_notifications"]!["notification_count"]!.GetValue<long>());

            // With the whole states cached (a full sync reads them) the answer is the same.
            (await alice.On(silo).GetAsync($"{V3}/sync?filter={Filter(1, lazy: false)}")).EnsureSuccess();
            Assert.True(RoomCaches.CurrentStates(silo.Get<CacheRegistry>()).TryGet(unnamed, out _));
            var warm = (await alice.On(silo).GetAsync($"{V3}/sync?filter={Filter(1, lazy: true)}")).EnsureSuccess().Body!;
            foreach (var roomId in new[] { unnamed, named })
            {
                Assert.Equal(StateIds(warm, roomId), StateIds(cold, roomId));
                Assert.Equal(TimelineIds(warm, roomId), TimelineIds(cold, roomId));
                Assert.Equal(Room(warm, roomId)["summary"]!.ToJsonString(), Room(cold, roomId)["summary"]!.ToJsonString());
                Assert.Equal(Room(warm, roomId)["unread_notifications"]!.ToJsonString(), Room(cold, roomId)["unread_notifications"]!.ToJsonString());
            }
        }
    }
}

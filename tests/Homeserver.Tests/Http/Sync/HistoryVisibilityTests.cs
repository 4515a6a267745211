using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.Sync;

/// <summary>What /sync shows across history visibility changes and gaps (spec "History visibility"; Synapse's rules).</summary>
public sealed class HistoryVisibilityTests(HistoryVisibilityTests.Fixture fx) : IClassFixture<HistoryVisibilityTests.Fixture>
{
    public sealed class Fixture : TwoSiloCluster;

    private static string Filter(JsonObject filter) => Uri.EscapeDataString(filter.ToJsonString());

    private static async Task SetVisibilityAsync(MatrixTestClient c, string roomId, string value) =>
        (await c.PutAsync($"{Room(roomId)}/state/m.room.history_visibility", new JsonObject { ["history_visibility"] = value })).EnsureSuccess();

    private static string[] Shapes(JsonArray events) => events.Select(e => e!["type"]!.GetValue<string>() switch
    {
        "m.room.history_visibility" => "hv:" + e["content"]!["history_visibility"]!.GetValue<string>(),
        "m.room.message" => "msg:" + e["content"]!["body"]!.GetValue<string>(),
        var type => type,
    }).ToArray();

    [Fact]
    public async Task A_history_visibility_change_is_seen_by_whoever_could_see_either_side_of_it()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob", fx.B);
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        await SetVisibilityAsync(alice, roomId, "joined");
        await alice.SendTextAsync(roomId, "1");
        await SetVisibilityAsync(alice, roomId, "invited");
        await alice.SendTextAsync(roomId, "2");
        await SetVisibilityAsync(alice, roomId, "shared");
        await alice.SendTextAsync(roomId, "3");
        await bob.JoinAsync(roomId);

        var timeline = (await bob.SyncAsync()).RoomEvents(roomId, "timeline");
        Assert.Equal(["hv:joined", "hv:shared", "msg:3", "m.room.member"], Shapes(timeline)[^4..]);
    }

    /// <summary>Bob is in a room whose history only members see; he syncs, leaves, Carol joins and Alice says
    /// <paramref name="hiddenMessages"/> things while he is away, and he rejoins. Returns his token from before he left.</summary>
    private async Task<(MatrixTestClient Bob, MatrixTestClient Carol, string RoomId, string Since)> AwayAndBackAsync(int hiddenMessages)
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob", fx.B);
        var carol = await fx.UserAsync("carol");
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        await bob.JoinAsync(roomId);
        await SetVisibilityAsync(alice, roomId, "joined");
        var since = (await bob.SyncAsync()).NextBatch();
        (await bob.PostAsync($"{Room(roomId)}/leave")).EnsureSuccess();
        await carol.JoinAsync(roomId);
        for (var i = 0; i < hiddenMessages; i++) await alice.SendTextAsync(roomId, $"hidden {i}");
        await bob.JoinAsync(roomId);
        await fx.SettleAsync();
        return (bob, carol, roomId, since);
    }

    [Fact]
    public async Task State_set_while_a_member_could_not_see_the_room_is_in_their_timeline_after_they_rejoin()
    {
        var (bob, carol, roomId, since) = await AwayAndBackAsync(hiddenMessages: 1);

        var timeline = (await bob.SyncAsync(since)).RoomEvents(roomId, "timeline");
        Assert.Contains(timeline, e => e!["type"]!.GetValue<string>() == "m.room.member" && e["state_key"]!.GetValue<string>() == carol.UserId
                                       && e["content"]!["membership"]!.GetValue<string>() == "join");
        // What was said meanwhile stays hidden.
        Assert.DoesNotContain(timeline, e => e!["content"]?["body"]?.GetValue<string>() == "hidden 0");
    }

    [Fact]
    public async Task A_left_room_shows_its_filtered_history_up_to_the_leave_and_its_state_when_new_to_the_client()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob", fx.B);
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        (await alice.PutAsync($"{Room(roomId)}/state/org.example.state", new JsonObject { ["v"] = "set before bob came" })).EnsureSuccess();
        var filter = Filter(new JsonObject
        {
            ["room"] = new JsonObject
            {
                ["timeline"] = new JsonObject { ["types"] = new JsonArray("m.room.message", "org.example.state"), ["limit"] = 2 },
                ["state"] = new JsonObject { ["types"] = new JsonArray("org.example.state") },
                ["include_leave"] = true,
            },
        });
        var since = (await bob.SyncAsync(extra: $"&filter={filter}")).NextBatch();
        // Joined and left within one window: the client never saw the room, so it gets its state.
        await bob.JoinAsync(roomId);
        await alice.SendTextAsync(roomId, "before");
        (await alice.PutAsync($"{Room(roomId)}/state/org.example.state", new JsonObject { ["v"] = "before" })).EnsureSuccess();
        (await bob.PostAsync($"{Room(roomId)}/leave")).EnsureSuccess();
        await alice.SendTextAsync(roomId, "after");
        (await alice.PutAsync($"{Room(roomId)}/state/org.example.state", new JsonObject { ["v"] = "after" })).EnsureSuccess();
        await fx.SettleAsync();

        var left = (await bob.SyncAsync(since, extra: $"&filter={filter}"))["rooms"]["leave"]![roomId]!;
        Assert.Equal(["msg:before", "org.example.state"], Shapes(left["timeline"]!["events"]!.AsArray()));
        Assert.Equal("set before bob came", Assert.Single(left["state"]!["events"]!.AsArray())!["content"]!["v"]!.GetValue<string>());

        var fromScratch = (await bob.SyncAsync(extra: $"&filter={filter}"))["rooms"]["leave"]![roomId]!;
        Assert.Equal(["msg:before", "org.example.state"], Shapes(fromScratch["timeline"]!["events"]!.AsArray()));
        Assert.Equal("before", fromScratch["timeline"]!["events"]![1]!["content"]!["v"]!.GetValue<string>());
        Assert.Equal("set before bob came", Assert.Single(fromScratch["state"]!["events"]!.AsArray())!["content"]!["v"]!.GetValue<string>());
    }

    [Fact]
    public async Task Hidden_history_does_not_crowd_the_visible_events_out_of_a_rejoining_members_window()
    {
        var (bob, carol, roomId, since) = await AwayAndBackAsync(hiddenMessages: 25);

        var room = (await bob.SyncAsync(since, extra: $"&filter={Filter(new JsonObject { ["room"] = new JsonObject { ["timeline"] = new JsonObject { ["limit"] = 5 } } })}"))["rooms"]["join"]![roomId]!;
        var timeline = room["timeline"]!["events"]!.AsArray();
        Assert.Contains(timeline, e => e!["type"]!.GetValue<string>() == "m.room.member" && e["state_key"]!.GetValue<string>() == carol.UserId);
        Assert.DoesNotContain(timeline, e => e!["content"]?["body"]?.GetValue<string>()?.StartsWith("hidden") == true);
    }

    [Fact]
    public async Task The_federation_event_format_gives_events_as_stored_and_a_bad_format_is_refused()
    {
        var alice = await fx.UserAsync("alice");
        var roomId = await alice.CreateRoomAsync();
        var eventId = await alice.SendTextAsync(roomId, "as signed");
        var sync = await alice.On(fx.B).SyncAsync(extra: $"&filter={Filter(new JsonObject { ["event_format"] = "federation" })}");
        var ev = sync.RoomEvents(roomId, "timeline").Single(e => e!["event_id"]?.GetValue<string>() == eventId)!;
        Assert.Equal(roomId, ev["room_id"]!.GetValue<string>());
        Assert.NotNull(ev["hashes"]);
        Assert.NotNull(ev["depth"]);
        var client = await alice.SyncAsync();
        Assert.Null(client.RoomEvents(roomId, "timeline").Single(e => e!["event_id"]?.GetValue<string>() == eventId)!["hashes"]);
        var bad = await alice.GetAsync($"{V3}/sync?filter={Filter(new JsonObject { ["event_format"] = "xml" })}");
        Assert.Equal(400, bad.StatusCode);
    }

    [Fact]
    public async Task A_departed_member_pages_back_from_their_own_leave()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob", fx.B);
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        await bob.JoinAsync(roomId);
        await alice.SendTextAsync(roomId, "before bob left");
        (await bob.PostAsync($"{Room(roomId)}/leave")).EnsureSuccess();
        await alice.SendTextAsync(roomId, "after bob left");
        await fx.SettleAsync();

        var page = (await bob.GetAsync($"{Room(roomId)}/messages?dir=b&limit=2")).EnsureSuccess()["chunk"]!.AsArray();
        Assert.Equal("m.room.member", page[0]!["type"]!.GetValue<string>());
        Assert.Equal(bob.UserId, page[0]!["state_key"]!.GetValue<string>());
        Assert.Equal("leave", page[0]!["content"]!["membership"]!.GetValue<string>());
        Assert.Equal("msg:before bob left", Shapes(new JsonArray(page[1]!.DeepClone()))[0]);
    }

    [Fact]
    public async Task A_gapped_incremental_sync_carries_only_the_state_that_changed_in_the_gap()
    {
        var alice = await fx.UserAsync("alice");
        var roomId = await alice.CreateRoomAsync();
        var filter = Filter(new JsonObject
        {
            ["room"] = new JsonObject
            {
                ["timeline"] = new JsonObject { ["limit"] = 1 },
                ["state"] = new JsonObject { ["types"] = new JsonArray("org.example.state") },
            },
        });
        (await alice.PutAsync($"{Room(roomId)}/state/org.example.state/changes", new JsonObject { ["v"] = 1 })).EnsureSuccess();
        (await alice.PutAsync($"{Room(roomId)}/state/org.example.state/stays", new JsonObject { ["v"] = 1 })).EnsureSuccess();
        await alice.SendTextAsync(roomId, "the one event of the first timeline");
        var first = await alice.SyncAsync(extra: $"&filter={filter}");
        Assert.Equal(2, first.RoomEvents(roomId, "state").Count);

        (await alice.PutAsync($"{Room(roomId)}/state/org.example.state/changes", new JsonObject { ["v"] = 2 })).EnsureSuccess();
        for (var i = 0; i < 5; i++) await alice.SendTextAsync(roomId, $"filler {i}");
        var gapped = await alice.On(fx.B).SyncAsync(first.NextBatch(), extra: $"&filter={filter}");
        Assert.True(gapped["rooms"]["join"]![roomId]!["timeline"]!["limited"]!.GetValue<bool>());
        var state = Assert.Single(gapped.RoomEvents(roomId, "state"))!;
        Assert.Equal("changes", state["state_key"]!.GetValue<string>());
        Assert.Equal(2, state["content"]!["v"]!.GetValue<int>());
    }
}

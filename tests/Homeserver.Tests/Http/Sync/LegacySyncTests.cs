using System.Diagnostics;
using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.Sync;

/// <summary>The API before /sync (GET /events, /initialSync, /rooms/{id}/initialSync) on two silos.</summary>
public sealed class LegacySyncTests(LegacySyncTests.Fixture fixture) : IClassFixture<LegacySyncTests.Fixture>
{
    public sealed class Fixture : TwoSiloCluster;

    private HomeserverTestCluster Cluster => fixture.Cluster;

    private static string[] Ids(JsonNode? chunk, string type = "m.room.message") =>
        chunk!.AsArray().Where(e => e!["type"]!.GetValue<string>() == type).Select(e => e!["event_id"]!.GetValue<string>()).ToArray();

    [Fact]
    public async Task Events_come_in_order_across_calls_with_a_limit_and_a_long_poll_is_woken_by_a_send()
    {
        var alice = await MatrixTestClient.RegisterAsync(Cluster.Silos[0]);
        var roomId = await alice.CreateRoomAsync();
        var initial = (await alice.GetAsync($"{V3}/events?timeout=0")).EnsureSuccess();
        Assert.NotNull(initial["start"]);
        var token = initial["end"].GetValue<string>();

        var sent = new List<string>();
        for (var i = 0; i < 12; i++) sent.Add(await alice.SendTextAsync(roomId, $"m{i}"));

        // Read on the other silo, five at a time: every message once, in order, each naming its room.
        var onB = alice.On(Cluster.Silos[1]);
        var seen = new List<string>();
        for (var call = 0; call < 10 && seen.Count < sent.Count; call++)
        {
            var page = (await onB.GetAsync($"{V3}/events?from={Uri.EscapeDataString(token)}&limit=5&timeout=1000")).EnsureSuccess();
            Assert.True(Ids(page["chunk"]).Length <= 5); // room events; presence and the like come on top
            Assert.All(page["chunk"].AsArray().Where(e => e!["type"]!.GetValue<string>() == "m.room.message"), e => Assert.Equal(roomId, e!["room_id"]!.GetValue<string>()));
            seen.AddRange(Ids(page["chunk"]));
            token = page["end"].GetValue<string>();
        }
        Assert.Equal(sent, seen);

        // Nothing new: a long-poll waits, and a send through the other silo ends it.
        var clock = Stopwatch.StartNew();
        var poll = onB.GetAsync($"{V3}/events?from={Uri.EscapeDataString(token)}&timeout=20000");
        await Task.Delay(300);
        Assert.False(poll.IsCompleted);
        var late = await alice.SendTextAsync(roomId, "late");
        var woken = (await poll).EnsureSuccess();
        Assert.Equal([late], Ids(woken["chunk"]));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10));

        AssertError(await alice.GetAsync($"{V3}/events?from=bogus"), 400, "M_INVALID_PARAM");
        AssertError(await alice.GetAsync($"{V3}/events?timeout=soon"), 400, "M_INVALID_PARAM");
        Assert.Equal(401, (await Cluster.Silos[0].Http.GetJsonAsync($"{V3}/events")).StatusCode);
    }

    [Fact]
    public async Task Events_carry_typing_receipts_and_account_data_with_their_room()
    {
        var alice = await MatrixTestClient.RegisterAsync(Cluster.Silos[0]);
        var roomId = await alice.CreateRoomAsync();
        var message = await alice.SendTextAsync(roomId, "hi");
        var token = (await alice.GetAsync($"{V3}/events?timeout=0")).EnsureSuccess()["end"].GetValue<string>();

        (await alice.PutAsync($"{Room(roomId)}/typing/{E(alice.UserId)}", new { typing = true, timeout = 30000 })).EnsureSuccess();
        (await alice.PostAsync($"{Room(roomId)}/receipt/m.read/{E(message)}", new JsonObject())).EnsureSuccess();
        (await alice.PutAsync($"{V3}/user/{E(alice.UserId)}/rooms/{E(roomId)}/tags/work", new { order = 0.5 })).EnsureSuccess();
        (await alice.PutAsync($"{V3}/user/{E(alice.UserId)}/account_data/org.example.global", new { x = 1 })).EnsureSuccess();

        var types = new Dictionary<string, JsonObject>();
        for (var call = 0; call < 10 && types.Count < 4; call++)
        {
            var page = (await alice.On(Cluster.Silos[1]).GetAsync($"{V3}/events?from={Uri.EscapeDataString(token)}&timeout=2000")).EnsureSuccess();
            foreach (var e in page["chunk"].AsArray().OfType<JsonObject>()) types[e["type"]!.GetValue<string>()] = e;
            token = page["end"].GetValue<string>();
        }
        Assert.Equal(roomId, types["m.typing"]["room_id"]!.GetValue<string>());
        Assert.Equal(roomId, types["m.receipt"]["room_id"]!.GetValue<string>());
        Assert.Equal(roomId, types["m.tag"]["room_id"]!.GetValue<string>());
        Assert.Null(types["org.example.global"]["room_id"]);
    }

    [Fact]
    public async Task Peeking_follows_a_world_readable_room_only()
    {
        var alice = await MatrixTestClient.RegisterAsync(Cluster.Silos[0]);
        var bob = await MatrixTestClient.RegisterAsync(Cluster.Silos[1]);
        var open = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        (await alice.PutAsync($"{Room(open)}/state/m.room.history_visibility/", new { history_visibility = "world_readable" })).EnsureSuccess();
        var closed = await alice.CreateRoomAsync();

        var token = (await bob.GetAsync($"{V3}/events?room_id={E(open)}&timeout=0")).EnsureSuccess()["end"].GetValue<string>();
        var poll = bob.GetAsync($"{V3}/events?room_id={E(open)}&from={Uri.EscapeDataString(token)}&timeout=20000");
        var sent = await alice.SendTextAsync(open, "for everyone");
        var peeked = (await poll).EnsureSuccess();
        Assert.True(Ids(peeked["chunk"]).SequenceEqual([sent]), peeked.Text);
        // Events as the legacy API gave them: the sender also as user_id.
        Assert.Equal(alice.UserId, peeked["chunk"].AsArray().First(e => e!["type"]!.GetValue<string>() == "m.room.message")!["user_id"]!.GetValue<string>());

        // The room's receipts reach whoever follows it, and so does who is typing in it.
        token = peeked["end"].GetValue<string>();
        async Task<JsonObject?> FollowUntilAsync(string type)
        {
            for (var call = 0; call < 5; call++)
            {
                var page = (await bob.GetAsync($"{V3}/events?room_id={E(open)}&from={Uri.EscapeDataString(token)}&timeout=5000")).EnsureSuccess();
                token = page["end"].GetValue<string>();
                if (page["chunk"].AsArray().OfType<JsonObject>().FirstOrDefault(e => e["type"]!.GetValue<string>() == type) is { } found) return found;
            }
            return null;
        }
        (await alice.PostAsync($"{Room(open)}/receipt/m.read/{E(sent)}", new JsonObject())).EnsureSuccess();
        var receipt = await FollowUntilAsync("m.receipt");
        Assert.NotNull(receipt);
        Assert.Equal(open, receipt!["room_id"]!.GetValue<string>());
        Assert.NotNull(receipt["content"]![sent]!["m.read"]![alice.UserId]);

        (await alice.PutAsync($"{Room(open)}/typing/{E(alice.UserId)}", new JsonObject { ["typing"] = true, ["timeout"] = 10_000 })).EnsureSuccess();
        var typing = await FollowUntilAsync("m.typing");
        Assert.NotNull(typing);
        Assert.Equal(open, typing!["room_id"]!.GetValue<string>());
        Assert.Equal([alice.UserId], typing["content"]!["user_ids"]!.AsArray().Select(u => u!.GetValue<string>()).ToArray());

        AssertError(await bob.GetAsync($"{V3}/events?room_id={E(closed)}&timeout=0"), 403, "M_FORBIDDEN");
    }

    [Fact]
    public async Task Initial_sync_lists_rooms_with_state_messages_receipts_and_left_rooms_when_archived()
    {
        var alice = await MatrixTestClient.RegisterAsync(Cluster.Silos[0]);
        var bob = await MatrixTestClient.RegisterAsync(Cluster.Silos[1]);
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat", ["visibility"] = "public", ["name"] = "Lobby" });
        var first = await alice.SendTextAsync(roomId, "one");
        await alice.SendTextAsync(roomId, "two");
        (await alice.PostAsync($"{Room(roomId)}/receipt/m.read/{E(first)}", new JsonObject())).EnsureSuccess();
        var left = await bob.CreateRoomAsync();
        (await bob.PutAsync($"{Room(left)}/state/org.example.state/", new { body = "kept" })).EnsureSuccess();
        await bob.SendTextAsync(left, "last words");
        (await bob.PostAsync($"{Room(left)}/leave", new JsonObject())).EnsureSuccess();

        var sync = (await alice.On(Cluster.Silos[1]).GetAsync($"{V3}/initialSync?limit=1")).EnsureSuccess();
        Assert.NotNull(sync["end"]);
        var room = sync["rooms"].AsArray().Single(r => r!["room_id"]!.GetValue<string>() == roomId)!;
        Assert.Equal("join", room["membership"]!.GetValue<string>());
        Assert.Equal("public", room["visibility"]!.GetValue<string>());
        var messages = room["messages"]!["chunk"]!.AsArray();
        Assert.Single(messages);
        Assert.Equal("two", messages[0]!["content"]!["body"]!.GetValue<string>());
        Assert.Contains(room["state"]!.AsArray(), e => e!["type"]!.GetValue<string>() == "m.room.name");
        var receipt = sync["receipts"].AsArray().Single(r => r!["room_id"]!.GetValue<string>() == roomId)!;
        Assert.NotNull(receipt["content"]![first]!["m.read"]![alice.UserId]!["ts"]);

        var bobs = (await bob.GetAsync($"{V3}/initialSync?limit=1")).EnsureSuccess();
        Assert.DoesNotContain(bobs["rooms"].AsArray(), r => r!["room_id"]!.GetValue<string>() == left);
        var archived = (await bob.GetAsync($"{V3}/initialSync?limit=2&archived=true")).EnsureSuccess();
        var gone = archived["rooms"].AsArray().Single(r => r!["room_id"]!.GetValue<string>() == left)!;
        Assert.Equal("leave", gone["membership"]!.GetValue<string>());
        Assert.Contains(gone["state"]!.AsArray(), e => e!["type"]!.GetValue<string>() == "org.example.state");
        Assert.Contains(gone["messages"]!["chunk"]!.AsArray(), e => e!["content"]?["body"]?.GetValue<string>() == "last words");
    }

    [Fact]
    public async Task Room_initial_sync_answers_members_former_members_and_world_readable_rooms_only()
    {
        var alice = await MatrixTestClient.RegisterAsync(Cluster.Silos[0]);
        var bob = await MatrixTestClient.RegisterAsync(Cluster.Silos[1]);
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        await bob.JoinAsync(roomId);
        await alice.SendTextAsync(roomId, "before bob left");
        (await bob.PostAsync($"{Room(roomId)}/leave", new JsonObject())).EnsureSuccess();
        await alice.SendTextAsync(roomId, "after bob left");

        var mine = (await alice.GetAsync($"{Room(roomId)}/initialSync")).EnsureSuccess();
        Assert.Equal("join", mine["membership"].GetValue<string>());
        Assert.Equal(roomId, mine["room_id"].GetValue<string>());
        Assert.NotNull(mine["messages"]["start"]);
        Assert.NotNull(mine["presence"].AsArray());
        Assert.Contains(mine["messages"]["chunk"]!.AsArray(), e => e!["content"]?["body"]?.GetValue<string>() == "after bob left");

        var bobs = (await bob.GetAsync($"{Room(roomId)}/initialSync")).EnsureSuccess();
        Assert.Equal("leave", bobs["membership"].GetValue<string>());
        var bodies = bobs["messages"]["chunk"]!.AsArray().Select(e => e!["content"]?["body"]?.GetValue<string>()).ToList();
        Assert.Contains("before bob left", bodies);
        Assert.DoesNotContain("after bob left", bodies);

        var carol = await MatrixTestClient.RegisterAsync(Cluster.Silos[0]);
        AssertError(await carol.GetAsync($"{Room(roomId)}/initialSync"), 403, "M_FORBIDDEN");
        (await alice.PutAsync($"{Room(roomId)}/state/m.room.history_visibility/", new { history_visibility = "world_readable" })).EnsureSuccess();
        (await carol.GetAsync($"{Room(roomId)}/initialSync")).EnsureSuccess();
        AssertError(await carol.GetAsync($"{Room("!nope:localhost")}/initialSync"), 404, "M_NOT_FOUND");
    }
    // As SyTest's "Latest account data comes down in /initialSync" sets it up: each type written twice, the later wins.
    private static async Task<string> RoomWithAccountDataAsync(MatrixTestClient alice)
    {
        var roomId = await alice.CreateRoomAsync();
        var global = $"{V3}/user/{E(alice.UserId)}/account_data/my.test.type";
        var inRoom = $"{V3}/user/{E(alice.UserId)}/rooms/{E(roomId)}/account_data/my.test.type";
        (await alice.PutAsync(global, new { cats_or_rats = "frogs" })).EnsureSuccess();
        (await alice.PutAsync(inRoom, new { cats_or_rats = "dogs" })).EnsureSuccess();
        (await alice.PutAsync(global, new { cats_or_rats = "cats" })).EnsureSuccess();
        (await alice.PutAsync(inRoom, new { cats_or_rats = "rats" })).EnsureSuccess();
        (await alice.PutAsync($"{V3}/user/{E(alice.UserId)}/rooms/{E(roomId)}/tags/test_tag", new { order = 1 })).EnsureSuccess();
        return roomId;
    }

    // A room's account data in either initialSync: the tag first, then the latest of each other type, none naming the room.
    private static void AssertRoomAccountData(JsonNode? accountData)
    {
        var events = accountData!.AsArray().Select(e => e!.AsObject()).ToList();
        Assert.Equal(["m.tag", "my.test.type"], events.Select(e => e["type"]!.GetValue<string>()));
        Assert.All(events, e => Assert.False(e.ContainsKey("room_id"), e.ToJsonString()));
        Assert.Equal(1, events[0]["content"]!["tags"]!["test_tag"]!["order"]!.GetValue<double>());
        Assert.Equal("rats", events[1]["content"]!["cats_or_rats"]!.GetValue<string>());
    }

    [Fact]
    public async Task Initial_sync_gives_the_latest_account_data_without_push_rules_and_room_account_data_without_room_id()
    {
        var alice = await MatrixTestClient.RegisterAsync(Cluster.Silos[0]);
        var roomId = await RoomWithAccountDataAsync(alice);

        var sync = (await alice.On(Cluster.Silos[1]).GetAsync($"{V3}/initialSync?limit=1")).EnsureSuccess();
        var global = Assert.Single(sync["account_data"].AsArray())!;
        Assert.Equal("my.test.type", global["type"]!.GetValue<string>());
        Assert.Equal("cats", global["content"]!["cats_or_rats"]!.GetValue<string>());
        AssertRoomAccountData(sync["rooms"].AsArray().Single(r => r!["room_id"]!.GetValue<string>() == roomId)!["account_data"]);
    }

    [Fact]
    public async Task Room_initial_sync_gives_the_rooms_latest_account_data_and_tags_without_room_id()
    {
        var alice = await MatrixTestClient.RegisterAsync(Cluster.Silos[0]);
        var roomId = await RoomWithAccountDataAsync(alice);

        AssertRoomAccountData((await alice.On(Cluster.Silos[1]).GetAsync($"{Room(roomId)}/initialSync")).EnsureSuccess()["account_data"]);
        // Another room of hers has none.
        var other = await alice.CreateRoomAsync();
        Assert.Empty((await alice.GetAsync($"{Room(other)}/initialSync")).EnsureSuccess()["account_data"].AsArray());
    }
}

using System.Diagnostics;
using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.Sync;

/// <summary>/sync, filters and /messages over HTTP on two silos: write through one, read through the other.</summary>
public sealed class SyncTests(SyncTests.Fixture fixture) : IClassFixture<SyncTests.Fixture>
{
    public sealed class Fixture : TwoSiloCluster;

    private HomeserverTestCluster Cluster => fixture.Cluster;
    private const string V3 = "/_matrix/client/v3";

    private async Task<(MatrixTestClient Alice, MatrixTestClient Bob, string RoomId)> RoomWithTwoMembersAsync()
    {
        var alice = await MatrixTestClient.RegisterAsync(Cluster.Silos[0]);
        var bob = await MatrixTestClient.RegisterAsync(Cluster.Silos[1]);
        var room = (await alice.PostAsync($"{V3}/createRoom", new JsonObject { ["preset"] = "private_chat", ["invite"] = new JsonArray(bob.UserId) })).EnsureSuccess();
        var roomId = room["room_id"].GetValue<string>();
        (await bob.PostAsync($"{V3}/join/{MatrixTestClient.Escape(roomId)}")).EnsureSuccess();
        return (alice, bob, roomId);
    }

    private static Task<MatrixResponse> SendAsync(MatrixTestClient c, string roomId, string body, string? txn = null) =>
        c.PutAsync($"{V3}/rooms/{MatrixTestClient.Escape(roomId)}/send/m.room.message/{txn ?? Guid.NewGuid().ToString("N")}",
            new JsonObject { ["msgtype"] = "m.text", ["body"] = body });

    private static JsonArray Timeline(JsonNode sync, string roomId) =>
        sync["rooms"]?["join"]?[roomId]?["timeline"]?["events"]?.AsArray() ?? [];

    private static IEnumerable<string> Bodies(JsonArray events) =>
        events.Where(e => e?["type"]?.GetValue<string>() == "m.room.message").Select(e => e!["content"]!["body"]!.GetValue<string>());

    [Fact]
    public async Task Initial_sync_shows_joined_rooms_with_state_and_timeline()
    {
        var (alice, _, roomId) = await RoomWithTwoMembersAsync();
        (await SendAsync(alice, roomId, "hello")).EnsureSuccess();

        var sync = (await alice.On(Cluster.Silos[1]).GetAsync($"{V3}/sync")).EnsureSuccess();
        Assert.StartsWith("v1_", sync["next_batch"].GetValue<string>());
        var room = sync["rooms"]["join"]![roomId]!;
        Assert.Contains("hello", Bodies(Timeline(sync.Body!, roomId)));
        var types = room["timeline"]!["events"]!.AsArray().Concat(room["state"]!["events"]!.AsArray()).Select(e => e!["type"]!.GetValue<string>()).ToList();
        Assert.Contains("m.room.create", types);
        Assert.Contains("m.room.power_levels", types);
        Assert.Equal(2, room["summary"]!["m.joined_member_count"]!.GetValue<int>());
        Assert.NotNull(room["timeline"]!["prev_batch"]);
        Assert.Null(room["timeline"]!["events"]![0]!["room_id"]);
    }

    [Fact]
    public async Task A_long_poll_on_one_silo_is_woken_by_a_send_through_the_other()
    {
        var (alice, bob, roomId) = await RoomWithTwoMembersAsync();
        var first = (await bob.GetAsync($"{V3}/sync?timeout=0")).EnsureSuccess();
        var since = first["next_batch"].GetValue<string>();

        var stopwatch = Stopwatch.StartNew();
        var poll = bob.GetAsync($"{V3}/sync?timeout=20000&since={since}");
        await Task.Delay(300);
        Assert.False(poll.IsCompleted, "the long-poll returned before anything happened");
        (await SendAsync(alice, roomId, "wake up")).EnsureSuccess();
        var woken = (await poll).EnsureSuccess();
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(10));
        Assert.Equal(["wake up"], Bodies(Timeline(woken.Body!, roomId)));
        Assert.NotEqual(since, woken["next_batch"].GetValue<string>());

        // Nothing new: timeout=0 answers at once with an empty room list.
        var quiet = (await bob.GetAsync($"{V3}/sync?timeout=0&since={woken["next_batch"].GetValue<string>()}")).EnsureSuccess();
        Assert.Empty(quiet["rooms"]["join"]!.AsObject());
    }

    [Fact]
    public async Task Read_your_writes_across_silos()
    {
        var (alice, _, roomId) = await RoomWithTwoMembersAsync();
        var since = (await alice.On(Cluster.Silos[1]).GetAsync($"{V3}/sync?timeout=0")).EnsureSuccess()["next_batch"].GetValue<string>();
        for (var i = 0; i < 5; i++)
        {
            var sent = (await SendAsync(alice, roomId, $"ryw {i}")).EnsureSuccess()["event_id"].GetValue<string>();
            var sync = (await alice.On(Cluster.Silos[1]).GetAsync($"{V3}/sync?timeout=0&since={since}")).EnsureSuccess();
            Assert.Contains(sent, Timeline(sync.Body!, roomId).Select(e => e!["event_id"]!.GetValue<string>()));
            var messages = (await alice.On(Cluster.Silos[1]).GetAsync($"{V3}/rooms/{MatrixTestClient.Escape(roomId)}/messages?dir=b&limit=1")).EnsureSuccess();
            Assert.Equal(sent, messages["chunk"][0]!["event_id"]!.GetValue<string>());
        }
    }

    [Fact]
    public async Task The_senders_device_gets_its_transaction_id_back_and_no_one_else()
    {
        var (alice, bob, roomId) = await RoomWithTwoMembersAsync();
        (await SendAsync(alice, roomId, "with txn", "txn-123")).EnsureSuccess();
        var mine = (await alice.GetAsync($"{V3}/sync")).EnsureSuccess();
        var own = Timeline(mine.Body!, roomId).Single(e => e!["content"]?["body"]?.GetValue<string>() == "with txn")!;
        Assert.Equal("txn-123", own["unsigned"]!["transaction_id"]!.GetValue<string>());
        var theirs = (await bob.GetAsync($"{V3}/sync")).EnsureSuccess();
        var other = Timeline(theirs.Body!, roomId).Single(e => e!["content"]?["body"]?.GetValue<string>() == "with txn")!;
        Assert.Null(other["unsigned"]!["transaction_id"]);
    }

    [Fact]
    public async Task Invites_arrive_with_stripped_state_and_leaves_in_the_leave_section()
    {
        var alice = await MatrixTestClient.RegisterAsync(Cluster.Silos[0]);
        var carol = await MatrixTestClient.RegisterAsync(Cluster.Silos[1]);
        var since = (await carol.GetAsync($"{V3}/sync")).EnsureSuccess()["next_batch"].GetValue<string>();
        var poll = carol.GetAsync($"{V3}/sync?timeout=20000&since={since}");
        var roomId = (await alice.PostAsync($"{V3}/createRoom", new JsonObject { ["name"] = "Invite test", ["invite"] = new JsonArray(carol.UserId) }))
            .EnsureSuccess()["room_id"].GetValue<string>();
        var invited = (await poll).EnsureSuccess();
        var stripped = invited["rooms"]["invite"]![roomId]!["invite_state"]!["events"]!.AsArray();
        Assert.Contains(stripped, e => e!["type"]!.GetValue<string>() == "m.room.name" && e["content"]!["name"]!.GetValue<string>() == "Invite test");
        Assert.Contains(stripped, e => e!["type"]!.GetValue<string>() == "m.room.member" && e["state_key"]!.GetValue<string>() == carol.UserId);

        (await carol.PostAsync($"{V3}/join/{MatrixTestClient.Escape(roomId)}")).EnsureSuccess();
        var afterJoin = (await carol.GetAsync($"{V3}/sync?since={invited["next_batch"].GetValue<string>()}")).EnsureSuccess();
        var joinedRoom = afterJoin["rooms"]["join"]![roomId]!;
        // A newly joined room arrives with its full state.
        var allTypes = joinedRoom["state"]!["events"]!.AsArray().Concat(joinedRoom["timeline"]!["events"]!.AsArray()).Select(e => e!["type"]!.GetValue<string>());
        Assert.Contains("m.room.create", allTypes);
        Assert.Contains("m.room.name", allTypes);

        (await carol.PostAsync($"{V3}/rooms/{MatrixTestClient.Escape(roomId)}/leave")).EnsureSuccess();
        var afterLeave = (await carol.On(Cluster.Silos[0]).GetAsync($"{V3}/sync?since={afterJoin["next_batch"].GetValue<string>()}")).EnsureSuccess();
        var left = afterLeave["rooms"]["leave"]![roomId]!;
        Assert.Contains(left["timeline"]!["events"]!.AsArray(), e => e!["type"]!.GetValue<string>() == "m.room.member" && e["content"]!["membership"]!.GetValue<string>() == "leave");
        Assert.Null(afterLeave["rooms"]["join"]![roomId]);
    }

    [Fact]
    public async Task Limited_timeline_and_back_pagination_cover_the_whole_history()
    {
        var (alice, bob, roomId) = await RoomWithTwoMembersAsync();
        for (var i = 0; i < 15; i++) (await SendAsync(alice, roomId, $"m{i}")).EnsureSuccess();

        var filter = "{\"room\":{\"timeline\":{\"limit\":5}}}";
        var sync = (await bob.GetAsync($"{V3}/sync?filter={Uri.EscapeDataString(filter)}")).EnsureSuccess();
        var timeline = sync["rooms"]["join"]![roomId]!["timeline"]!;
        Assert.True(timeline["limited"]!.GetValue<bool>());
        Assert.Equal(["m10", "m11", "m12", "m13", "m14"], Bodies(timeline["events"]!.AsArray()));

        var token = timeline["prev_batch"]!.GetValue<string>();
        var older = new List<JsonNode>();
        for (var page = 0; page < 20; page++)
        {
            var r = (await bob.On(Cluster.Silos[0]).GetAsync($"{V3}/rooms/{MatrixTestClient.Escape(roomId)}/messages?dir=b&limit=4&from={token}")).EnsureSuccess();
            older.AddRange(r["chunk"].AsArray().Select(e => e!));
            if (r.Body!["end"] is null) break;
            token = r["end"].GetValue<string>();
        }
        Assert.Equal(Enumerable.Range(0, 10).Select(i => $"m{9 - i}"), Bodies(new JsonArray(older.Select(e => e.DeepClone()).ToArray())));
        Assert.Equal("m.room.create", older[^1]["type"]!.GetValue<string>());

        // Forwards from the start gives the same history in order.
        var forwards = (await bob.GetAsync($"{V3}/rooms/{MatrixTestClient.Escape(roomId)}/messages?dir=f&limit=100")).EnsureSuccess();
        Assert.Equal(Enumerable.Range(0, 15).Select(i => $"m{i}"), Bodies(forwards["chunk"].AsArray()));
        // A page with events always has an 'end' (as Synapse answers); the page after the last one is empty and has none.
        var after = (await bob.GetAsync($"{V3}/rooms/{MatrixTestClient.Escape(roomId)}/messages?dir=f&limit=100&from={forwards["end"].GetValue<string>()}")).EnsureSuccess();
        Assert.Empty(after["chunk"].AsArray());
        Assert.Null(after.Body!["end"]);
    }

    [Fact]
    public async Task Filters_are_stored_exactly_as_sent_and_used_by_sync()
    {
        var (alice, _, roomId) = await RoomWithTwoMembersAsync();
        const string text = "{\"room\":{\"timeline\":{\"limit\":2,\"types\":[\"m.room.message\"]}},  \"presence\":{\"types\":[]}}";
        var created = (await alice.PostAsync($"{V3}/user/{MatrixTestClient.Escape(alice.UserId)}/filter", text)).EnsureSuccess();
        var id = created["filter_id"].GetValue<string>();
        var fetched = await alice.On(Cluster.Silos[1]).GetAsync($"{V3}/user/{MatrixTestClient.Escape(alice.UserId)}/filter/{id}");
        Assert.Equal(200, fetched.StatusCode);
        Assert.Equal(text, fetched.Text);

        for (var i = 0; i < 3; i++) (await SendAsync(alice, roomId, $"f{i}")).EnsureSuccess();
        var sync = (await alice.GetAsync($"{V3}/sync?filter={id}")).EnsureSuccess();
        var events = Timeline(sync.Body!, roomId);
        Assert.All(events, e => Assert.Equal("m.room.message", e!["type"]!.GetValue<string>()));
        Assert.Equal(["f1", "f2"], Bodies(events));

        Assert.Equal(404, (await alice.GetAsync($"{V3}/user/{MatrixTestClient.Escape(alice.UserId)}/filter/999999")).StatusCode);
        Assert.Equal("M_NOT_JSON", (await alice.PostAsync($"{V3}/user/{MatrixTestClient.Escape(alice.UserId)}/filter", "{nope")).ErrCode);
        Assert.Equal("M_FORBIDDEN", (await alice.PostAsync($"{V3}/user/{MatrixTestClient.Escape("@someone:localhost")}/filter", "{}")).ErrCode);
    }

    [Fact]
    public async Task Bad_sync_and_messages_parameters_are_matrix_errors()
    {
        var (alice, _, roomId) = await RoomWithTwoMembersAsync();
        var outsider = await MatrixTestClient.RegisterAsync(Cluster.Silos[1]);
        var r = await alice.GetAsync($"{V3}/sync?since=garbage");
        Assert.Equal((400, "M_INVALID_PARAM"), (r.StatusCode, r.ErrCode));
        r = await alice.GetAsync($"{V3}/sync?timeout=soon");
        Assert.Equal((400, "M_INVALID_PARAM"), (r.StatusCode, r.ErrCode));
        r = await alice.GetAsync($"{V3}/sync?filter=%7Bnot%20json");
        Assert.Equal(400, r.StatusCode);
        r = await Cluster.Silos[0].Http.GetJsonAsync($"{V3}/sync");
        Assert.Equal((401, "M_MISSING_TOKEN"), (r.StatusCode, r.ErrCode));

        var messages = $"{V3}/rooms/{MatrixTestClient.Escape(roomId)}/messages";
        r = await alice.GetAsync($"{messages}?dir=sideways");
        Assert.Equal((400, "M_INVALID_PARAM"), (r.StatusCode, r.ErrCode));
        r = await alice.GetAsync($"{messages}?dir=b&limit=lots");
        Assert.Equal((400, "M_INVALID_PARAM"), (r.StatusCode, r.ErrCode));
        r = await alice.GetAsync($"{messages}?dir=b&from=nonsense");
        Assert.Equal((400, "M_INVALID_PARAM"), (r.StatusCode, r.ErrCode));
        r = await outsider.GetAsync($"{messages}?dir=b");
        Assert.Equal((403, "M_FORBIDDEN"), (r.StatusCode, r.ErrCode));
        r = await alice.GetAsync($"{V3}/rooms/{MatrixTestClient.Escape("!nope:localhost")}/messages?dir=b");
        Assert.Equal(404, r.StatusCode);
    }

    [Fact]
    public async Task Startup_endpoints_answer_valid_empty_json()
    {
        var alice = await MatrixTestClient.RegisterAsync(Cluster.Silos[0]);
        Assert.Equal(200, (await alice.GetAsync($"{V3}/voip/turnServer")).StatusCode);
        Assert.Equal(200, (await alice.GetAsync($"{V3}/thirdparty/protocols")).StatusCode);
        Assert.Empty((await alice.GetAsync($"{V3}/pushers")).EnsureSuccess()["pushers"].AsArray());
        Assert.Empty((await alice.GetAsync($"{V3}/notifications")).EnsureSuccess()["notifications"].AsArray());
    }

    [Fact]
    public async Task A_filtered_timeline_fills_its_limit_with_matching_events()
    {
        var (alice, _, roomId) = await RoomWithTwoMembersAsync();
        (await SendAsync(alice, roomId, "the message")).EnsureSuccess();
        for (var i = 0; i < 12; i++)
            (await alice.PutAsync($"{V3}/rooms/{MatrixTestClient.Escape(roomId)}/send/org.example.filler/f{i}", new JsonObject { ["n"] = i })).EnsureSuccess();
        var filter = Uri.EscapeDataString("{\"room\":{\"timeline\":{\"limit\":1,\"types\":[\"m.room.message\"]}}}");

        var sync = (await alice.On(Cluster.Silos[1]).GetAsync($"{V3}/sync?filter={filter}")).EnsureSuccess();
        var timeline = sync["rooms"]["join"]![roomId]!["timeline"]!;
        Assert.Equal(["the message"], Bodies(timeline["events"]!.AsArray()));
        Assert.False(timeline["limited"]!.GetValue<bool>());

        (await SendAsync(alice, roomId, "the second")).EnsureSuccess();
        var again = (await alice.GetAsync($"{V3}/sync?filter={filter}")).EnsureSuccess();
        var second = again["rooms"]["join"]![roomId]!["timeline"]!;
        Assert.Equal(["the second"], Bodies(second["events"]!.AsArray()));
        Assert.True(second["limited"]!.GetValue<bool>());
    }

    [Fact]
    public async Task The_summary_names_heroes_only_for_a_room_without_a_name()
    {
        var (alice, bob, roomId) = await RoomWithTwoMembersAsync();
        var unnamed = (await alice.GetAsync($"{V3}/sync")).EnsureSuccess()["rooms"]["join"]![roomId]!["summary"]!;
        Assert.Equal([bob.UserId], unnamed["m.heroes"]!.AsArray().Select(h => h!.GetValue<string>()));
        Assert.Equal(2, unnamed["m.joined_member_count"]!.GetValue<int>());

        (await alice.PutAsync($"{V3}/rooms/{MatrixTestClient.Escape(roomId)}/state/m.room.name/", new JsonObject { ["name"] = "Named" })).EnsureSuccess();
        var named = (await alice.GetAsync($"{V3}/sync")).EnsureSuccess()["rooms"]["join"]![roomId]!["summary"]!;
        Assert.Null(named["m.heroes"]);
        Assert.Equal(2, named["m.joined_member_count"]!.GetValue<int>());
        Assert.Equal(0, named["m.invited_member_count"]!.GetValue<int>());
    }

    [Fact]
    public async Task Filters_with_parts_of_the_wrong_shape_are_refused()
    {
        var alice = await MatrixTestClient.RegisterAsync(Cluster.Silos[0]);
        var invalid = new[]
        {
            "{\"presence\":\"not_an_object\"}", "{\"account_data\":[]}", "{\"room\":{\"timeline\":\"x\"}}", "{\"room\":{\"state\":\"x\"}}",
            "{\"room\":{\"ephemeral\":\"x\"}}", "{\"room\":{\"account_data\":\"x\"}}", "{\"room\":{\"timeline\":{\"rooms\":\"x\"}}}",
            "{\"room\":{\"timeline\":{\"not_senders\":\"x\"}}}", "{\"room\":{\"timeline\":{\"types\":[0]}}}",
            "{\"room\":{\"timeline\":{\"rooms\":[\"not_a_room_id\"]}}}", "{\"room\":{\"timeline\":{\"senders\":[\"not_a_sender_id\"]}}}",
        };
        foreach (var filter in invalid)
        {
            var r = await alice.PostAsync($"{V3}/user/{MatrixTestClient.Escape(alice.UserId)}/filter", filter);
            Assert.True(r.StatusCode == 400, $"{filter}: {r.StatusCode} {r.Text}");
        }
        (await alice.PostAsync($"{V3}/user/{MatrixTestClient.Escape(alice.UserId)}/filter",
            "{\"room\":{\"timeline\":{\"rooms\":[\"!a:localhost\"],\"senders\":[\"@b:localhost\"]}}}")).EnsureSuccess();
    }
}

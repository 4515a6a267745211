using System.Text.Json.Nodes;
using Homeserver.Tests.Http.Accounts;
using Homeserver.Caches;
using Homeserver.Rooms;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.Rooms;

/// <summary>
/// Relations and threads (spec "Forming relationships between events", "Threading", "Event replacements", "Reference
/// relations"): <c>GET /relations</c> with its filters and paging, <c>GET /threads</c>, the aggregations bundled into
/// served events on either silo, and redaction taking an event out of its relations.
/// </summary>
public sealed class RelationTests(TwoSiloCluster fixture) : IClassFixture<TwoSiloCluster>
{
    private const string V1 = "/_matrix/client/v1";

    private static string Relations(string roomId, string eventId, string rest = "") =>
        $"{V1}/rooms/{MatrixTestClient.Escape(roomId)}/relations/{MatrixTestClient.Escape(eventId)}{rest}";

    private static async Task<string> SendAsync(MatrixTestClient user, string roomId, string type, JsonObject content) =>
        (await user.PutAsync($"{MatrixPaths.Room(roomId)}/send/{type}/{Guid.NewGuid():N}", content)).EnsureSuccess()["event_id"].GetValue<string>();

    private static Task<string> ReplyAsync(MatrixTestClient user, string roomId, string root, string body) =>
        SendAsync(user, roomId, "m.room.message", new JsonObject
        {
            ["msgtype"] = "m.text",
            ["body"] = body,
            ["m.relates_to"] = new JsonObject { ["rel_type"] = "m.thread", ["event_id"] = root },
        });

    private static Task<string> EditAsync(MatrixTestClient user, string roomId, string original, string body) =>
        SendAsync(user, roomId, "m.room.message", new JsonObject
        {
            ["msgtype"] = "m.text",
            ["body"] = "* " + body,
            ["m.new_content"] = new JsonObject { ["msgtype"] = "m.text", ["body"] = body },
            ["m.relates_to"] = new JsonObject { ["rel_type"] = "m.replace", ["event_id"] = original },
        });

    private static IEnumerable<string> Ids(JsonNode chunk) => chunk.AsArray().Select(e => e!["event_id"]!.GetValue<string>());

    private async Task<(MatrixTestClient Alice, MatrixTestClient Bob, MatrixTestClient Carol, string RoomId)> RoomAsync()
    {
        var alice = await fixture.UserAsync("rel-alice");
        var bob = await fixture.UserAsync("rel-bob", fixture.B);
        var carol = await fixture.UserAsync("rel-carol");
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        await bob.JoinAsync(roomId);
        await carol.JoinAsync(roomId);
        return (alice, bob, carol, roomId);
    }

    [Fact]
    public async Task Relations_list_children_by_kind_and_type_with_paging_in_both_directions()
    {
        var (alice, bob, _, roomId) = await RoomAsync();
        var root = await alice.SendTextAsync(roomId, "root");
        var r1 = await ReplyAsync(bob, roomId, root, "one");
        var r2 = await ReplyAsync(alice, roomId, root, "two");
        var reaction = await SendAsync(bob, roomId, "m.reaction", new JsonObject
        {
            ["m.relates_to"] = new JsonObject { ["rel_type"] = "m.annotation", ["event_id"] = root, ["key"] = "👍" },
        });
        var r3 = await ReplyAsync(bob, roomId, root, "three");
        await CrossSilo.WaitForAsync(fixture.A, fixture.B);

        var all = (await bob.GetAsync(Relations(roomId, root, "?limit=10"))).EnsureSuccess();
        Assert.Equal([r3, reaction, r2, r1], Ids(all["chunk"]));
        Assert.Null(all.Body!["next_batch"]);

        var annotations = (await bob.GetAsync(Relations(roomId, root, "/m.annotation/m.reaction"))).EnsureSuccess();
        Assert.Equal([reaction], Ids(annotations["chunk"]));
        var wrongType = (await bob.GetAsync(Relations(roomId, root, "/m.annotation/m.room.message"))).EnsureSuccess();
        Assert.Empty(wrongType["chunk"].AsArray());

        var first = (await alice.GetAsync(Relations(roomId, root, "/m.thread?limit=2"))).EnsureSuccess();
        Assert.Equal([r3, r2], Ids(first["chunk"]));
        var next = first["next_batch"].GetValue<string>();
        var second = (await alice.GetAsync(Relations(roomId, root, $"/m.thread?limit=2&from={next}"))).EnsureSuccess();
        Assert.Equal([r1], Ids(second["chunk"]));
        var forwards = (await alice.GetAsync(Relations(roomId, root, "/m.thread?dir=f"))).EnsureSuccess();
        Assert.Equal([r1, r2, r3], Ids(forwards["chunk"]));
    }

    [Fact]
    public async Task Served_events_carry_thread_edit_and_reference_aggregations_on_either_silo()
    {
        var (alice, bob, carol, roomId) = await RoomAsync();
        var root = await alice.SendTextAsync(roomId, "original");
        await ReplyAsync(bob, roomId, root, "reply one");
        var latest = await ReplyAsync(bob, roomId, root, "reply two");
        await EditAsync(bob, roomId, root, "not an edit: another sender");
        var edit = await EditAsync(alice, roomId, root, "edited");
        var reference = await SendAsync(carol, roomId, "m.room.message", new JsonObject
        {
            ["msgtype"] = "m.text",
            ["body"] = "see above",
            ["m.relates_to"] = new JsonObject { ["rel_type"] = "m.reference", ["event_id"] = root },
        });
        await CrossSilo.WaitForAsync(fixture.A, fixture.B);

        JsonObject RelationsOf(JsonNode ev) => ev["unsigned"]!["m.relations"]!.AsObject();

        // /event on the other silo, for a thread participant.
        var forBob = (await bob.GetAsync($"{MatrixPaths.Room(roomId)}/event/{MatrixTestClient.Escape(root)}")).EnsureSuccess().Body!;
        var thread = RelationsOf(forBob)["m.thread"]!;
        Assert.Equal(2, thread["count"]!.GetValue<int>());
        Assert.Equal(latest, thread["latest_event"]!["event_id"]!.GetValue<string>());
        Assert.True(thread["current_user_participated"]!.GetValue<bool>());
        Assert.Equal(edit, RelationsOf(forBob)["m.replace"]!["event_id"]!.GetValue<string>());
        Assert.Equal([reference], Ids(RelationsOf(forBob)["m.reference"]!["chunk"]!));

        // /messages and an initial /sync for someone who never replied in the thread.
        var messages = (await carol.GetAsync($"{MatrixPaths.Room(roomId)}/messages?dir=b&limit=20")).EnsureSuccess();
        var inMessages = messages["chunk"].AsArray().Single(e => e!["event_id"]!.GetValue<string>() == root)!;
        Assert.False(RelationsOf(inMessages)["m.thread"]!["current_user_participated"]!.GetValue<bool>());
        var sync = await carol.On(fixture.B).SyncAsync(extra: "&filter=" + Uri.EscapeDataString("{\"room\":{\"timeline\":{\"limit\":20}}}"));
        var inSync = sync.RoomEvents(roomId, "timeline").Single(e => e!["event_id"]!.GetValue<string>() == root)!;
        Assert.Equal(2, RelationsOf(inSync)["m.thread"]!["count"]!.GetValue<int>());
        Assert.Equal(edit, RelationsOf(inSync)["m.replace"]!["event_id"]!.GetValue<string>());

        // An event nothing relates to has no aggregations.
        var lonely = await alice.SendTextAsync(roomId, "alone");
        var plain = (await alice.GetAsync($"{MatrixPaths.Room(roomId)}/event/{MatrixTestClient.Escape(lonely)}")).EnsureSuccess().Body!;
        Assert.Null(plain["unsigned"]!["m.relations"]);
    }

    [Fact]
    public async Task A_redacted_reply_leaves_its_thread_everywhere()
    {
        var (alice, bob, _, roomId) = await RoomAsync();
        var root = await alice.SendTextAsync(roomId, "root");
        var first = await ReplyAsync(bob, roomId, root, "first");
        var second = await ReplyAsync(bob, roomId, root, "second");
        await CrossSilo.WaitForAsync(fixture.A, fixture.B);
        // Both silos have the summary cached now.
        var rootPath = $"{MatrixPaths.Room(roomId)}/event/{MatrixTestClient.Escape(root)}";
        Assert.Equal(2, (await alice.GetAsync(rootPath)).EnsureSuccess()["unsigned"]["m.relations"]!["m.thread"]!["count"]!.GetValue<int>());
        Assert.Equal(2, (await alice.On(fixture.B).GetAsync(rootPath)).EnsureSuccess()["unsigned"]["m.relations"]!["m.thread"]!["count"]!.GetValue<int>());

        (await bob.PutAsync($"{MatrixPaths.Room(roomId)}/redact/{MatrixTestClient.Escape(second)}/{Guid.NewGuid():N}", new JsonObject())).EnsureSuccess();
        await CrossSilo.WaitForAsync(fixture.B, fixture.A);
        foreach (var silo in new[] { fixture.A, fixture.B })
        {
            var thread = (await alice.On(silo).GetAsync(rootPath)).EnsureSuccess()["unsigned"]["m.relations"]!["m.thread"]!;
            Assert.Equal(1, thread["count"]!.GetValue<int>());
            Assert.Equal(first, thread["latest_event"]!["event_id"]!.GetValue<string>());
        }
        Assert.Equal([first], Ids((await alice.GetAsync(Relations(roomId, root))).EnsureSuccess()["chunk"]));
    }

    [Fact]
    public async Task Threads_are_listed_by_latest_reply_and_by_participation()
    {
        var (alice, bob, carol, roomId) = await RoomAsync();
        var older = await alice.SendTextAsync(roomId, "older thread");
        var newer = await bob.SendTextAsync(roomId, "newer thread");
        await alice.SendTextAsync(roomId, "no thread");
        await ReplyAsync(carol, roomId, older, "carol in the older");
        await ReplyAsync(alice, roomId, newer, "alice in the newer");
        // A reply to the older thread makes it the latest.
        await ReplyAsync(alice, roomId, older, "alice in the older");
        await CrossSilo.WaitForAsync(fixture.A, fixture.B);

        var threads = $"{V1}/rooms/{MatrixTestClient.Escape(roomId)}/threads";
        var all = (await bob.GetAsync(threads)).EnsureSuccess();
        Assert.Equal([older, newer], Ids(all["chunk"]));
        Assert.Equal(2, all["chunk"][0]!["unsigned"]!["m.relations"]!["m.thread"]!["count"]!.GetValue<int>());

        Assert.Equal([older], Ids((await carol.GetAsync($"{threads}?include=participated")).EnsureSuccess()["chunk"]));
        // Bob started the newer thread without replying in it: he takes part in it.
        Assert.Equal([newer], Ids((await bob.GetAsync($"{threads}?include=participated")).EnsureSuccess()["chunk"]));

        var page = (await alice.GetAsync($"{threads}?limit=1")).EnsureSuccess();
        Assert.Equal([older], Ids(page["chunk"]));
        var rest = (await alice.GetAsync($"{threads}?limit=1&from={page["next_batch"].GetValue<string>()}")).EnsureSuccess();
        Assert.Equal([newer], Ids(rest["chunk"]));
        Assert.Null(rest.Body!["next_batch"]);
    }

    [Fact]
    public async Task Unread_counts_split_by_thread_when_the_filter_asks_and_threaded_receipts_read_one_thread()
    {
        var (alice, bob, _, roomId) = await RoomAsync();
        await bob.SendTextAsync(roomId, "main one");
        var root = await bob.SendTextAsync(roomId, "thread root");
        var first = await ReplyAsync(bob, roomId, root, "reply one");
        await ReplyAsync(bob, roomId, root, "reply two");
        await CrossSilo.WaitForAsync(fixture.B, fixture.A);
        var filter = "&filter=" + Uri.EscapeDataString("{\"room\":{\"timeline\":{\"unread_thread_notifications\":true}}}");

        async Task<(long Main, long? Thread)> CountsAsync()
        {
            var room = (await alice.SyncAsync(extra: filter))["rooms"]["join"]![roomId]!;
            var thread = room["unread_thread_notifications"]!.AsObject()[root]?["notification_count"]?.GetValue<long>();
            return (room["unread_notifications"]!["notification_count"]!.GetValue<long>(), thread);
        }

        Assert.Equal((2L, (long?)2), await CountsAsync());
        // A receipt in the thread reads that thread only.
        (await alice.PostAsync($"{MatrixPaths.Room(roomId)}/receipt/m.read/{MatrixTestClient.Escape(first)}",
            new JsonObject { ["thread_id"] = root })).EnsureSuccess();
        Assert.Equal((2L, (long?)1), await CountsAsync());
        // A receipt on the main timeline reads the main timeline only.
        (await alice.PostAsync($"{MatrixPaths.Room(roomId)}/receipt/m.read/{MatrixTestClient.Escape(root)}",
            new JsonObject { ["thread_id"] = "main" })).EnsureSuccess();
        Assert.Equal((0L, (long?)1), await CountsAsync());
        // A message of her own in the thread reads it.
        await ReplyAsync(alice, roomId, root, "read it all");
        Assert.Equal((0L, (long?)null), await CountsAsync());
    }

    [Fact]
    public async Task Bad_requests_and_hidden_parents_get_matrix_errors()
    {
        var (alice, _, _, roomId) = await RoomAsync();
        var root = await alice.SendTextAsync(roomId, "root");
        var unknown = await alice.GetAsync(Relations(roomId, "$doesnotexist"));
        Assert.Equal((404, "M_NOT_FOUND"), (unknown.StatusCode, unknown.ErrCode));
        var badDir = await alice.GetAsync(Relations(roomId, root, "?dir=sideways"));
        Assert.Equal(400, badDir.StatusCode);
        var badInclude = await alice.GetAsync($"{V1}/rooms/{MatrixTestClient.Escape(roomId)}/threads?include=some");
        Assert.Equal((400, "M_INVALID_PARAM"), (badInclude.StatusCode, badInclude.ErrCode));

        var outsider = await fixture.UserAsync("rel-outsider");
        var forbidden = await outsider.GetAsync(Relations(roomId, root));
        Assert.Equal(403, forbidden.StatusCode);

        // A room whose history is hidden from those who joined later: the parent, before the join, is unknown to them.
        var privateRoom = await alice.CreateRoomAsync(new JsonObject
        {
            ["preset"] = "public_chat",
            ["initial_state"] = new JsonArray(new JsonObject
            {
                ["type"] = "m.room.history_visibility", ["state_key"] = "", ["content"] = new JsonObject { ["history_visibility"] = "joined" },
            }),
        });
        var hidden = await alice.SendTextAsync(privateRoom, "before the join");
        await outsider.JoinAsync(privateRoom);
        var notVisible = await outsider.GetAsync(Relations(privateRoom, hidden));
        Assert.Equal((404, "M_NOT_FOUND"), (notVisible.StatusCode, notVisible.ErrCode));
    }

    [Fact]
    public async Task Each_silo_records_that_nothing_relates_to_a_new_message_but_keeps_no_such_record_for_a_state_event()
    {
        var (alice, _, _, roomId) = await RoomAsync();
        var topic = (await alice.PutAsync($"{MatrixPaths.Room(roomId)}/state/m.room.topic/", new JsonObject { ["topic"] = "t" }))
            .EnsureSuccess()["event_id"].GetValue<string>();
        var message = await alice.SendTextAsync(roomId, "after the topic");
        foreach (var silo in new[] { fixture.A, fixture.B })
        {
            var summaries = silo.Get<CacheRegistry>().Get<RelationSummary>(RoomRelations.Cache);
            // The reader applies the message after the topic: once the message is recorded, the topic was passed.
            for (var deadline = DateTime.UtcNow.AddSeconds(10); !summaries.TryGet(message, out _); await Task.Delay(20))
                Assert.True(DateTime.UtcNow < deadline, "the silo's reader never recorded the message");
            Assert.False(summaries.TryGet(topic, out _));
        }
    }
}

using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.UserStreams;

[Collection(UserStreamsHttpCollection.Name)]
public sealed class ReceiptHttpTests(UserStreamsHttpCluster fx)
{
    private static JsonObject? Receipts(MatrixResponse sync, string roomId) =>
        sync.RoomEvents(roomId, "ephemeral").FirstOrDefault(e => e!["type"]!.GetValue<string>() == "m.receipt")?["content"]?.AsObject();

    private Task<(MatrixTestClient Alice, MatrixTestClient Bob, string RoomId)> RoomAsync() => fx.PublicRoomWithTwoAsync();

    [Fact]
    public async Task A_read_receipt_posted_on_one_silo_reaches_the_senders_long_poll_on_the_other()
    {
        var (alice, bob, roomId) = await RoomAsync();
        var eventId = await alice.SendTextAsync(roomId, "hello");
        await fx.SettleAsync();
        var aliceOnB = alice.On(fx.B);
        var since = (await aliceOnB.SyncAsync()).NextBatch();
        var poll = aliceOnB.SyncAsync(since, timeoutMs: 20_000);
        await Task.Delay(200);
        Assert.False(poll.IsCompleted);
        (await bob.PostAsync($"{Room(roomId)}/receipt/m.read/{E(eventId)}", new JsonObject { ["thread_id"] = "main" })).EnsureSuccess();
        var receipts = Receipts(await poll, roomId);
        var mine = receipts![eventId]!["m.read"]![bob.UserId]!;
        Assert.True(mine["ts"]!.GetValue<long>() > 0);
        Assert.Equal("main", mine["thread_id"]!.GetValue<string>());
    }

    [Fact]
    public async Task Private_receipts_reach_only_their_owner_and_receipts_only_move_forward()
    {
        var (alice, bob, roomId) = await RoomAsync();
        var first = await alice.SendTextAsync(roomId, "one");
        var second = await alice.SendTextAsync(roomId, "two");
        var aliceSince = (await alice.SyncAsync()).NextBatch();
        var bobSince = (await bob.SyncAsync()).NextBatch();

        (await bob.PostAsync($"{Room(roomId)}/receipt/m.read.private/{E(second)}", new JsonObject())).EnsureSuccess();
        (await bob.PostAsync($"{Room(roomId)}/receipt/m.read/{E(second)}")).EnsureSuccess();
        (await bob.PostAsync($"{Room(roomId)}/receipt/m.read/{E(first)}")).EnsureSuccess(); // older: ignored

        var toAlice = Receipts(await alice.SyncAsync(aliceSince), roomId)!;
        Assert.Equal([second], toAlice.Select(kv => kv.Key).ToArray());
        Assert.Equal(["m.read"], toAlice[second]!.AsObject().Select(kv => kv.Key).ToArray());
        var toBob = Receipts(await bob.SyncAsync(bobSince), roomId)!;
        Assert.True(toBob[second]!.AsObject().ContainsKey("m.read.private"));
        Assert.Null(Receipts(await alice.SyncAsync(), roomId)![first]);
    }

    [Fact]
    public async Task Unread_counts_follow_the_read_receipt_and_highlight_mentions()
    {
        var (alice, bob, roomId) = await RoomAsync();
        await alice.SendTextAsync(roomId, "plain");
        var mention = await alice.SendTextAsync(roomId, $"hey {bob.UserId}, look");
        await fx.SettleAsync();
        var counts = (await bob.On(fx.B).SyncAsync())["rooms"]["join"]![roomId]!["unread_notifications"]!;
        Assert.Equal(2, counts["notification_count"]!.GetValue<long>());
        Assert.Equal(1, counts["highlight_count"]!.GetValue<long>());
        // The sender's own messages are not unread for her.
        Assert.Equal(0, (await alice.SyncAsync())["rooms"]["join"]![roomId]!["unread_notifications"]!["notification_count"]!.GetValue<long>());

        (await bob.PostAsync($"{Room(roomId)}/read_markers", new JsonObject { ["m.fully_read"] = mention, ["m.read"] = mention })).EnsureSuccess();
        var after = await bob.SyncAsync();
        Assert.Equal(0, after["rooms"]["join"]![roomId]!["unread_notifications"]!["notification_count"]!.GetValue<long>());
        Assert.Equal(0, after["rooms"]["join"]![roomId]!["unread_notifications"]!["highlight_count"]!.GetValue<long>());
        Assert.NotNull(Receipts(after, roomId)![mention]!["m.read"]![bob.UserId]);
        var fullyRead = Assert.Single(after.RoomEvents(roomId, "account_data"), e => e!["type"]!.GetValue<string>() == "m.fully_read");
        Assert.Equal(mention, fullyRead!["content"]!["event_id"]!.GetValue<string>());
        var stored = (await bob.GetAsync($"{V3}/user/{E(bob.UserId)}/rooms/{E(roomId)}/account_data/m.fully_read")).EnsureSuccess();
        Assert.Equal(mention, stored["event_id"].GetValue<string>());
    }

    [Fact]
    public async Task Incremental_syncs_keep_exact_counts_through_messages_mentions_redactions_own_messages_and_receipts_on_either_silo()
    {
        var (alice, bob, roomId) = await RoomAsync();
        var bobOnB = bob.On(fx.B);
        var sinceA = (await bob.SyncAsync()).NextBatch();
        await fx.SettleAsync();
        var sinceB = (await bobOnB.SyncAsync()).NextBatch();

        // Each step syncs bob on both silos from his last token there and checks the counts each reports.
        async Task ExpectAsync(long notifications, long highlights)
        {
            await fx.SettleAsync();
            foreach (var onB in new[] { false, true })
            {
                var sync = await (onB ? bobOnB : bob).SyncAsync(onB ? sinceB : sinceA);
                if (onB) sinceB = sync.NextBatch(); else sinceA = sync.NextBatch();
                var counts = sync["rooms"]["join"]![roomId]?["unread_notifications"];
                Assert.True(counts is not null, $"no counts on silo {(onB ? "B" : "A")}");
                Assert.Equal((notifications, highlights), (counts!["notification_count"]!.GetValue<long>(), counts["highlight_count"]!.GetValue<long>()));
            }
        }

        await alice.SendTextAsync(roomId, "one");
        await ExpectAsync(1, 0);
        var mention = await alice.SendTextAsync(roomId, $"ping {bob.UserId}");
        await alice.SendTextAsync(roomId, "three");
        await ExpectAsync(3, 1);
        // A redacted message no longer counts.
        (await alice.PutAsync($"{Room(roomId)}/redact/{E(mention)}/r1", new JsonObject())).EnsureSuccess();
        await ExpectAsync(2, 0);
        // Bob's own message: everything before it counts as read.
        await bob.SendTextAsync(roomId, "mine");
        await ExpectAsync(0, 0);
        var four = await alice.SendTextAsync(roomId, "four");
        await alice.SendTextAsync(roomId, "five");
        await ExpectAsync(2, 0);
        // A receipt posted through silo B: silo A's memory of the counts must not survive it.
        (await bobOnB.PostAsync($"{Room(roomId)}/receipt/m.read/{E(four)}")).EnsureSuccess();
        await ExpectAsync(1, 0);
        await alice.SendTextAsync(roomId, "six");
        await ExpectAsync(2, 0);
    }

    [Fact]
    public async Task Receipt_errors()
    {
        var (alice, _, roomId) = await RoomAsync();
        var eventId = await alice.SendTextAsync(roomId, "x");
        var eve = await fx.UserAsync("eve");
        AssertError(await alice.PostAsync($"{Room(roomId)}/receipt/m.bogus/{E(eventId)}"), 400, "M_INVALID_PARAM");
        AssertError(await eve.PostAsync($"{Room(roomId)}/receipt/m.read/{E(eventId)}"), 403, "M_FORBIDDEN");
        AssertError(await alice.PostAsync($"{Room(roomId)}/receipt/m.read/{E("$missing")}"), 404, "M_NOT_FOUND");
        AssertError(await alice.PostAsync($"{Room(roomId)}/receipt/m.read/{E(eventId)}", new { thread_id = 5 }), 400, "M_BAD_JSON");
        AssertError(await alice.PostAsync($"{Room(roomId)}/read_markers", new JsonObject { ["m.read"] = "$missing" }), 404, "M_NOT_FOUND");
        AssertError(await eve.PostAsync($"{Room(roomId)}/read_markers", new JsonObject { ["m.fully_read"] = eventId }), 403, "M_FORBIDDEN");
        Assert.Equal(401, (await fx.A.Http.PostJsonAsync($"{Room(roomId)}/receipt/m.read/{E(eventId)}", null)).StatusCode);
    }
}

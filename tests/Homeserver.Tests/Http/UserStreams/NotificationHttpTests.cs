using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.UserStreams;

/// <summary>Push rules evaluated for the unread counts of /sync and for GET /notifications.</summary>
[Collection(UserStreamsHttpCollection.Name)]
public sealed class NotificationHttpTests(UserStreamsHttpCluster fx)
{
    private Task<(MatrixTestClient Alice, MatrixTestClient Bob, string RoomId)> RoomAsync() => fx.PublicRoomWithTwoAsync();

    private static JsonNode Counts(MatrixResponse sync, string roomId) => sync["rooms"]["join"]![roomId]!["unread_notifications"]!;

    private static long Count(MatrixResponse sync, string roomId, string counter) => Counts(sync, roomId)[counter]!.GetValue<long>();

    [Fact]
    public async Task A_content_rule_that_highlights_raises_the_highlight_count_and_a_muted_room_counts_nothing()
    {
        var (alice, bob, roomId) = await RoomAsync();
        await alice.SendTextAsync(roomId, "before any rule");
        var since = (await bob.SyncAsync()).NextBatch();
        Assert.Equal(0, Count(await bob.SyncAsync(), roomId, "highlight_count"));

        (await bob.PutAsync($"{V3}/pushrules/global/content/anything", new JsonObject
        {
            ["pattern"] = "*", ["actions"] = new JsonArray("notify", new JsonObject { ["set_tweak"] = "highlight", ["value"] = true }),
        })).EnsureSuccess();
        await alice.SendTextAsync(roomId, "nothing special");
        await fx.SettleAsync();
        // Counted with the new rule on both silos, incrementally and from scratch; the earlier message highlights now too.
        var incremental = await bob.On(fx.B).SyncAsync(since);
        Assert.Equal(2, Count(incremental, roomId, "notification_count"));
        Assert.Equal(2, Count(incremental, roomId, "highlight_count"));
        Assert.Equal(2, Count(await bob.SyncAsync(), roomId, "highlight_count"));

        (await bob.PutAsync($"{V3}/pushrules/global/override/mute", new JsonObject
        {
            ["conditions"] = new JsonArray(new JsonObject { ["kind"] = "event_match", ["key"] = "room_id", ["pattern"] = roomId }),
            ["actions"] = new JsonArray("dont_notify"),
        })).EnsureSuccess();
        await alice.SendTextAsync(roomId, "muted now");
        await fx.SettleAsync();
        var muted = await bob.On(fx.B).SyncAsync();
        Assert.Equal(0, Count(muted, roomId, "notification_count"));
        Assert.Equal(0, Count(muted, roomId, "highlight_count"));
    }

    [Fact]
    public async Task A_disabled_default_rule_stops_counting_and_the_count_grows_with_each_new_message()
    {
        var (alice, bob, roomId) = await RoomAsync();
        await alice.SendTextAsync(roomId, "one");
        var first = await bob.SyncAsync();
        Assert.Equal(1, Count(first, roomId, "notification_count"));
        await alice.SendTextAsync(roomId, "two");
        var second = await bob.SyncAsync(first.NextBatch());
        Assert.Equal(2, Count(second, roomId, "notification_count"));

        // Two members: the one-to-one rule decides before the plain message rule.
        foreach (var rule in new[] { ".m.rule.room_one_to_one", ".m.rule.message" })
            (await bob.PutAsync($"{V3}/pushrules/global/underride/{rule}/enabled", new JsonObject { ["enabled"] = false })).EnsureSuccess();
        await alice.SendTextAsync(roomId, "three");
        Assert.Equal(0, Count(await bob.SyncAsync(second.NextBatch()), roomId, "notification_count"));
    }

    [Fact]
    public async Task Notifications_are_listed_newest_first_with_read_marks_filters_and_pages()
    {
        var (alice, bob, roomId) = await RoomAsync();
        var sent = new List<string>();
        for (var i = 0; i < 5; i++) sent.Add(await alice.SendTextAsync(roomId, i == 2 ? $"ping {bob.UserId}" : $"message {i}"));
        (await alice.PutAsync($"{Room(roomId)}/state/m.room.topic", new JsonObject { ["topic"] = "state events do not notify" })).EnsureSuccess();
        (await bob.PostAsync($"{Room(roomId)}/receipt/m.read/{E(sent[1])}")).EnsureSuccess();
        await bob.SendTextAsync(roomId, "my own message is no notification");
        await fx.SettleAsync();

        var all = (await bob.On(fx.B).GetAsync($"{V3}/notifications")).EnsureSuccess();
        var list = all["notifications"]!.AsArray();
        Assert.Equal(sent.AsEnumerable().Reverse().ToArray(), list.Select(n => n!["event"]!["event_id"]!.GetValue<string>()).ToArray());
        Assert.Equal([false, false, false, true, true], list.Select(n => n!["read"]!.GetValue<bool>()).ToArray());
        var ping = list[2]!;
        Assert.Equal(roomId, ping["room_id"]!.GetValue<string>());
        Assert.True(ping.AsObject().ContainsKey("profile_tag"));
        Assert.True(ping["ts"]!.GetValue<long>() > 0);
        Assert.Contains(ping["actions"]!.AsArray(), a => a is JsonObject t && t["set_tweak"]!.GetValue<string>() == "highlight");
        Assert.Null(all.Body!["next_token"]);

        var highlights = (await bob.GetAsync($"{V3}/notifications?only=highlight")).EnsureSuccess()["notifications"]!.AsArray();
        Assert.Equal(sent[2], Assert.Single(highlights)!["event"]!["event_id"]!.GetValue<string>());

        var page1 = (await bob.GetAsync($"{V3}/notifications?limit=2")).EnsureSuccess();
        Assert.Equal([sent[4], sent[3]], page1["notifications"]!.AsArray().Select(n => n!["event"]!["event_id"]!.GetValue<string>()).ToArray());
        var token = page1["next_token"]!.GetValue<string>();
        var page2 = (await bob.GetAsync($"{V3}/notifications?limit=2&from={token}")).EnsureSuccess();
        Assert.Equal([sent[2], sent[1]], page2["notifications"]!.AsArray().Select(n => n!["event"]!["event_id"]!.GetValue<string>()).ToArray());

        var toAlice = (await alice.GetAsync($"{V3}/notifications")).EnsureSuccess()["notifications"]!.AsArray();
        Assert.Equal(bob.UserId, Assert.Single(toAlice)!["event"]!["sender"]!.GetValue<string>());
        var bad = await bob.GetAsync($"{V3}/notifications?from=not-a-token");
        Assert.Equal(400, bad.StatusCode);
        Assert.Equal("M_INVALID_PARAM", bad.ErrCode);
        Assert.Equal(401, (await fx.A.Http.GetJsonAsync($"{V3}/notifications")).StatusCode);
    }
}

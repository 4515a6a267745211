using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.Rooms;

[Collection(RoomsHttpCollection.Name)]
public sealed class EventHttpTests(RoomsHttpCluster fx)
{
    [Fact]
    public async Task Sends_are_idempotent_per_transaction_and_the_sender_device_gets_its_transaction_id()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        (await bob.PostAsync($"{Room(roomId)}/join")).EnsureSuccess();

        var first = await alice.SendTextAsync(roomId, "hello", txn: "txn1");
        var retried = await alice.On(fx.B).SendTextAsync(roomId, "hello", txn: "txn1");
        Assert.Equal(first, retried);
        var otherDevice = await MatrixTestClient.LoginAsync(fx.A, alice.UserId);
        Assert.NotEqual(first, await otherDevice.SendTextAsync(roomId, "hello", txn: "txn1"));

        await fx.SettleAsync();
        var mine = (await alice.On(fx.B).GetAsync(Event(roomId, first))).EnsureSuccess();
        Assert.Equal("txn1", mine["unsigned"]!["transaction_id"]!.GetValue<string>());
        Assert.Equal("hello", mine["content"]!["body"]!.GetValue<string>());
        Assert.Equal(alice.UserId, mine["sender"]!.GetValue<string>());
        Assert.True(mine["unsigned"]!["age"]!.GetValue<long>() >= 0);
        Assert.Null(mine.Body!["prev_events"]);
        Assert.Null((await otherDevice.On(fx.B).GetAsync(Event(roomId, first))).EnsureSuccess()["unsigned"]!.AsObject()["transaction_id"]);
        Assert.Null((await bob.On(fx.B).GetAsync(Event(roomId, first))).EnsureSuccess()["unsigned"]!.AsObject()["transaction_id"]);
    }

    [Fact]
    public async Task Send_errors_are_matrix_errors()
    {
        var alice = await fx.UserAsync("alice");
        var eve = await fx.UserAsync("eve");
        var roomId = await alice.CreateRoomAsync();
        var send = $"{Room(roomId)}/send/m.room.message";

        var outsider = await eve.PutAsync($"{send}/t1", new JsonObject { ["body"] = "hi" });
        Assert.Equal((403, "M_FORBIDDEN"), (outsider.StatusCode, outsider.ErrCode));
        var notJson = await alice.PutAsync($"{send}/t2", "{oops");
        Assert.Equal((400, "M_NOT_JSON"), (notJson.StatusCode, notJson.ErrCode));
        var notObject = await alice.PutAsync($"{send}/t3", "[]");
        Assert.Equal((400, "M_BAD_JSON"), (notObject.StatusCode, notObject.ErrCode));
        var floats = await alice.PutAsync($"{send}/t4", """{"n": 0.5}""");
        Assert.Equal((400, "M_BAD_JSON"), (floats.StatusCode, floats.ErrCode));
        var huge = await alice.PutAsync($"{send}/t5", new JsonObject { ["body"] = new string('a', 66_000) });
        Assert.Equal((413, "M_TOO_LARGE"), (huge.StatusCode, huge.ErrCode));
        var unknownRoom = await alice.PutAsync($"{Room("!missing:localhost")}/send/m.room.message/t6", new JsonObject());
        Assert.Equal((404, "M_NOT_FOUND"), (unknownRoom.StatusCode, unknownRoom.ErrCode));
        var noToken = await fx.A.Http.PutJsonAsync($"{send}/t7", new JsonObject());
        Assert.Equal(401, noToken.StatusCode);
    }

    [Fact]
    public async Task State_is_set_and_read_with_any_state_key_and_needs_the_power_level()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        (await bob.PostAsync($"{Room(roomId)}/join")).EnsureSuccess();
        var state = $"{Room(roomId)}/state";

        var topic = (await alice.PutAsync($"{state}/m.room.topic/", new JsonObject { ["topic"] = "t1" })).EnsureSuccess()["event_id"]!.GetValue<string>();
        (await alice.PutAsync($"{state}/m.room.name", new JsonObject { ["name"] = "n1" })).EnsureSuccess();
        (await alice.PutAsync($"{state}/m.thing/{MatrixTestClient.Escape("a/b:c")}", new JsonObject { ["k"] = "slash" })).EnsureSuccess();
        await fx.SettleAsync();
        var bobOnB = bob.On(fx.B);
        Assert.Equal("t1", (await bobOnB.GetAsync($"{state}/m.room.topic"))["topic"]!.GetValue<string>());
        Assert.Equal("n1", (await bobOnB.GetAsync($"{state}/m.room.name/"))["name"]!.GetValue<string>());
        Assert.Equal("slash", (await bobOnB.GetAsync($"{state}/m.thing/{MatrixTestClient.Escape("a/b:c")}"))["k"]!.GetValue<string>());
        var full = (await bobOnB.GetAsync($"{state}/m.room.topic?format=event")).EnsureSuccess();
        Assert.Equal(topic, full["event_id"]!.GetValue<string>());

        var missing = await bobOnB.GetAsync($"{state}/m.room.avatar");
        Assert.Equal((404, "M_NOT_FOUND"), (missing.StatusCode, missing.ErrCode));
        var bobSets = await bob.PutAsync($"{state}/m.room.name", new JsonObject { ["name"] = "mine" });
        Assert.Equal((403, "M_FORBIDDEN"), (bobSets.StatusCode, bobSets.ErrCode));
        var notObject = await alice.PutAsync($"{state}/m.room.name", "\"x\"");
        Assert.Equal((400, "M_BAD_JSON"), (notObject.StatusCode, notObject.ErrCode));
        // State keyed by a user id belongs to that user.
        var othersKey = await bob.PutAsync($"{state}/m.user.thing/{MatrixTestClient.Escape(alice.UserId)}", new JsonObject());
        Assert.Equal(403, othersKey.StatusCode);
    }

    [Fact]
    public async Task A_redaction_naming_an_event_of_another_room_is_refused_and_an_unknown_event_is_404()
    {
        var alice = await fx.UserAsync("alice");
        var here = await alice.CreateRoomAsync();
        var there = await alice.CreateRoomAsync();
        var elsewhere = await alice.SendTextAsync(there, "not in this room");
        var r = await alice.PutAsync($"{Room(here)}/redact/{MatrixTestClient.Escape(elsewhere)}/x1", new JsonObject());
        Assert.Equal((400, "M_INVALID_PARAM"), (r.StatusCode, r.ErrCode));
        var unknown = await alice.PutAsync($"{Room(here)}/redact/{MatrixTestClient.Escape("$nosuchevent:localhost")}/x2", new JsonObject());
        Assert.Equal((404, "M_NOT_FOUND"), (unknown.StatusCode, unknown.ErrCode));
    }

    [Fact]
    public async Task Redaction_removes_content_for_everyone_and_is_idempotent()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        (await bob.PostAsync($"{Room(roomId)}/join")).EnsureSuccess();
        var aliceMessage = await alice.SendTextAsync(roomId, "oops");

        var bobRedacts = await bob.PutAsync($"{Room(roomId)}/redact/{MatrixTestClient.Escape(aliceMessage)}/r1", new JsonObject());
        Assert.Equal((403, "M_FORBIDDEN"), (bobRedacts.StatusCode, bobRedacts.ErrCode));
        var unknown = await alice.PutAsync($"{Room(roomId)}/redact/{MatrixTestClient.Escape("$missing")}/r2", new JsonObject());
        Assert.Equal((404, "M_NOT_FOUND"), (unknown.StatusCode, unknown.ErrCode));

        var redaction = (await alice.PutAsync($"{Room(roomId)}/redact/{MatrixTestClient.Escape(aliceMessage)}/r3", new JsonObject { ["reason"] = "typo" }))
            .EnsureSuccess()["event_id"]!.GetValue<string>();
        var again = (await alice.PutAsync($"{Room(roomId)}/redact/{MatrixTestClient.Escape(aliceMessage)}/r3", new JsonObject { ["reason"] = "typo" }))
            .EnsureSuccess()["event_id"]!.GetValue<string>();
        Assert.Equal(redaction, again);

        await fx.SettleAsync();
        var seen = (await bob.On(fx.B).GetAsync(Event(roomId, aliceMessage))).EnsureSuccess();
        Assert.Empty(seen["content"]!.AsObject());
        Assert.Equal(redaction, seen["unsigned"]!["redacted_because"]!["event_id"]!.GetValue<string>());
        Assert.Equal("typo", seen["unsigned"]!["redacted_because"]!["content"]!["reason"]!.GetValue<string>());
        var redactionEvent = (await bob.On(fx.B).GetAsync(Event(roomId, redaction))).EnsureSuccess();
        Assert.Equal(aliceMessage, redactionEvent["redacts"]!.GetValue<string>());
    }

    [Fact]
    public async Task Events_are_only_served_to_those_who_may_see_them()
    {
        var alice = await fx.UserAsync("alice");
        var eve = await fx.UserAsync("eve");
        var roomId = await alice.CreateRoomAsync();
        var otherRoom = await alice.CreateRoomAsync();
        var message = await alice.SendTextAsync(roomId, "private");
        await fx.SettleAsync();

        Assert.Equal(404, (await eve.On(fx.B).GetAsync(Event(roomId, message))).StatusCode);
        var wrongRoom = await alice.GetAsync(Event(otherRoom, message));
        Assert.Equal((404, "M_NOT_FOUND"), (wrongRoom.StatusCode, wrongRoom.ErrCode));
        Assert.Equal(404, (await alice.GetAsync(Event(roomId, "$nope"))).StatusCode);
        // /context tells someone who may not read the room so (403), as Synapse does.
        Assert.Equal(403, (await eve.GetAsync($"{Room(roomId)}/context/{MatrixTestClient.Escape(message)}")).StatusCode);
    }

    [Fact]
    public async Task Context_returns_neighbours_state_and_tokens()
    {
        var alice = await fx.UserAsync("alice");
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["name"] = "ctx" });
        var sent = new List<string>();
        for (var i = 0; i < 7; i++) sent.Add(await alice.SendTextAsync(roomId, $"m{i}"));
        await fx.SettleAsync();

        var r = (await alice.On(fx.B).GetAsync($"{Room(roomId)}/context/{MatrixTestClient.Escape(sent[3])}?limit=4")).EnsureSuccess();
        Assert.Equal(sent[3], r["event"]!["event_id"]!.GetValue<string>());
        Assert.Equal(new[] { sent[2], sent[1] }, r["events_before"]!.AsArray().Select(e => e!["event_id"]!.GetValue<string>()));
        Assert.Equal(new[] { sent[4], sent[5] }, r["events_after"]!.AsArray().Select(e => e!["event_id"]!.GetValue<string>()));
        Assert.Contains(r["state"]!.AsArray(), e => e!["type"]!.GetValue<string>() == "m.room.name");
        Assert.StartsWith("t", r["start"]!.GetValue<string>());
        Assert.StartsWith("t", r["end"]!.GetValue<string>());
        var badLimit = await alice.GetAsync($"{Room(roomId)}/context/{MatrixTestClient.Escape(sent[3])}?limit=-1");
        Assert.Equal((400, "M_INVALID_PARAM"), (badLimit.StatusCode, badLimit.ErrCode));
    }

    [Fact]
    public async Task Context_with_lazy_loading_carries_only_the_shown_senders_members()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        await bob.JoinAsync(roomId);
        await alice.SendTextAsync(roomId, "only alice speaks");
        var message = await alice.SendTextAsync(roomId, "still alice");
        await alice.SendTextAsync(roomId, "again");
        await fx.SettleAsync();

        var filter = Uri.EscapeDataString("{\"lazy_load_members\":true}");
        var lazy = (await alice.GetAsync($"{Room(roomId)}/context/{MatrixTestClient.Escape(message)}?limit=2&filter={filter}")).EnsureSuccess();
        var members = lazy["state"]!.AsArray().Where(e => e!["type"]!.GetValue<string>() == "m.room.member").Select(e => e!["state_key"]!.GetValue<string>());
        Assert.Equal([alice.UserId], members);
        var full = (await alice.GetAsync($"{Room(roomId)}/context/{MatrixTestClient.Escape(message)}?limit=2")).EnsureSuccess();
        Assert.Contains(full["state"]!.AsArray(), e => e!["state_key"]?.GetValue<string>() == bob.UserId);
    }
}

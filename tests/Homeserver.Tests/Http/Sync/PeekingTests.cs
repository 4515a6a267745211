using System.Diagnostics;
using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.Sync;

/// <summary>
/// Room peeking as MSC2753 has it and SyTest's <c>31sync/17peeking.pl</c> checks it: <c>POST /peek</c> through silo A,
/// <c>/sync</c> of the peeking device through silo B, where the room shows under <c>rooms.peek</c>.
/// </summary>
public sealed class PeekingTests(PeekingTests.Fixture fx) : IClassFixture<PeekingTests.Fixture>
{
    public sealed class Fixture : TwoSiloCluster;

    private static string Peek(string roomIdOrAlias) => $"{V3}/peek/{E(roomIdOrAlias)}";

    private static async Task SetVisibilityAsync(MatrixTestClient c, string roomId, string value) =>
        (await c.PutAsync($"{Room(roomId)}/state/m.room.history_visibility", new JsonObject { ["history_visibility"] = value })).EnsureSuccess();

    /// <summary>Alice's room, world readable unless told otherwise, and Bob, who is not in it, with a sync token from
    /// before any peek (on silo B).</summary>
    private async Task<(MatrixTestClient Alice, MatrixTestClient Bob, string RoomId, string Since)> RoomAndOutsiderAsync(
        string visibility = "world_readable", JsonObject? create = null)
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        var roomId = await alice.CreateRoomAsync(create);
        await SetVisibilityAsync(alice, roomId, visibility);
        var since = (await bob.On(fx.B).SyncAsync()).NextBatch();
        return (alice, bob, roomId, since);
    }

    private static JsonNode? Peeked(MatrixResponse sync, string roomId) => sync.Body?["rooms"]?["peek"]?[roomId];

    private static int PeekedCount(MatrixResponse sync) => sync.Body?["rooms"]?["peek"]?.AsObject().Count ?? 0;

    private static JsonArray PeekTimeline(MatrixResponse sync, string roomId) => Peeked(sync, roomId)?["timeline"]?["events"]?.AsArray() ?? [];

    private static string? LastBody(JsonArray events) => events.LastOrDefault(e => e!["type"]!.GetValue<string>() == "m.room.message")?["content"]?["body"]?.GetValue<string>();

    [Fact]
    public async Task A_peeked_world_readable_room_shows_in_full_once_then_only_with_new_events()
    {
        var (alice, bob, roomId, since) = await RoomAndOutsiderAsync();

        var peeked = (await bob.PostAsync(Peek(roomId), new JsonObject())).EnsureSuccess();
        Assert.Equal(roomId, peeked["room_id"].GetValue<string>());
        await alice.SendTextAsync(roomId, "something to peek");
        await fx.SettleAsync();

        var first = await bob.On(fx.B).SyncAsync(since);
        var room = Peeked(first, roomId) ?? throw new Xunit.Sdk.XunitException($"no peeked room in {first.Text}");
        var timeline = room["timeline"]!;
        Assert.NotNull(timeline["limited"]);
        Assert.NotNull(timeline["prev_batch"]);
        var events = timeline["events"]!.AsArray();
        Assert.Equal("m.room.create", events[0]!["type"]!.GetValue<string>());
        Assert.Equal("something to peek", LastBody(events));
        // The timeline starts at the room's creation, so there is no state before it; no typing or receipts either.
        Assert.Empty(room["state"]?["events"]?.AsArray() ?? []);
        Assert.Empty(room["ephemeral"]?["events"]?.AsArray() ?? []);
        Assert.Empty(first["rooms"]["join"]!.AsObject());

        var unchanged = await bob.On(fx.B).SyncAsync(first.NextBatch());
        Assert.Null(Peeked(unchanged, roomId));

        await alice.SendTextAsync(roomId, "something else to peek");
        await fx.SettleAsync();
        var next = await bob.On(fx.B).SyncAsync(unchanged.NextBatch());
        var incremental = PeekTimeline(next, roomId);
        Assert.Equal("something else to peek", LastBody(incremental));
        Assert.DoesNotContain(incremental, e => e!["type"]!.GetValue<string>() == "m.room.create");
    }

    [Fact]
    public async Task An_initial_sync_shows_the_peeked_room_and_the_r0_path_peeks_too()
    {
        var (alice, bob, roomId, _) = await RoomAndOutsiderAsync();
        await alice.SendTextAsync(roomId, "before the peek");

        var peeked = (await bob.PostAsync($"/_matrix/client/r0/peek/{E(roomId)}", new JsonObject())).EnsureSuccess();
        Assert.Equal(roomId, peeked["room_id"].GetValue<string>());

        var initial = await bob.On(fx.B).SyncAsync();
        Assert.Equal("before the peek", LastBody(PeekTimeline(initial, roomId)));
    }

    [Fact]
    public async Task A_long_poll_of_the_peeking_device_is_woken_by_a_new_event_in_the_peeked_room()
    {
        var (alice, bob, roomId, since) = await RoomAndOutsiderAsync();
        (await bob.PostAsync(Peek(roomId), new JsonObject())).EnsureSuccess();
        var shown = await bob.On(fx.B).SyncAsync(since);
        Assert.NotNull(Peeked(shown, roomId));

        var stopwatch = Stopwatch.StartNew();
        var poll = bob.On(fx.B).SyncAsync(shown.NextBatch(), timeoutMs: 30_000);
        await Task.Delay(500);
        await alice.SendTextAsync(roomId, "wake up");
        var woken = await poll;
        Assert.Equal("wake up", LastBody(PeekTimeline(woken, roomId)));
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(20), $"the long-poll took {stopwatch.Elapsed}");
    }

    [Theory]
    [InlineData("shared")]
    [InlineData("invited")]
    [InlineData("joined")]
    public async Task Rooms_whose_history_is_not_world_readable_cannot_be_peeked(string visibility)
    {
        var (_, bob, roomId, since) = await RoomAndOutsiderAsync(visibility);

        AssertError(await bob.PostAsync(Peek(roomId), new JsonObject()), 403, "M_FORBIDDEN");
        Assert.Equal(0, PeekedCount(await bob.On(fx.B).SyncAsync(since)));
    }

    [Fact]
    public async Task Unknown_rooms_and_aliases_are_404_and_malformed_ids_400()
    {
        var bob = await fx.UserAsync("bob");
        var server = bob.UserId.Split(':', 2)[1];

        AssertError(await bob.PostAsync(Peek($"!nosuchroom:{server}"), new JsonObject()), 404, "M_NOT_FOUND");
        AssertError(await bob.PostAsync(Peek($"#nosuchalias:{server}"), new JsonObject()), 404, "M_NOT_FOUND");
        AssertError(await bob.PostAsync(Peek("not-a-room"), new JsonObject()), 400, "M_INVALID_PARAM");
        AssertError(await bob.PostAsync(Peek("!nocolon"), new JsonObject()), 400, "M_INVALID_PARAM");
        AssertError(await bob.PostAsync(Peek("#nocolon"), new JsonObject()), 400, "M_INVALID_PARAM");
        AssertError(await bob.PostAsync($"{Room("!nocolon")}/unpeek", new JsonObject()), 400, "M_INVALID_PARAM");
        Assert.Equal(401, (await fx.A.Http.PostJsonAsync(Peek($"!nosuchroom:{server}"), new JsonObject())).StatusCode);
    }

    [Fact]
    public async Task A_room_can_be_peeked_by_its_alias()
    {
        var aliasName = MatrixTestClient.UniqueLocalpart("peektest");
        var (alice, bob, roomId, since) = await RoomAndOutsiderAsync(create: new JsonObject { ["room_alias_name"] = aliasName });
        var alias = $"#{aliasName}:{alice.UserId.Split(':', 2)[1]}";

        var peeked = (await bob.PostAsync(Peek(alias), new JsonObject())).EnsureSuccess();
        Assert.Equal(roomId, peeked["room_id"].GetValue<string>());
        await alice.SendTextAsync(roomId, "something to peek");
        await fx.SettleAsync();

        Assert.Equal("something to peek", LastBody(PeekTimeline(await bob.On(fx.B).SyncAsync(since), roomId)));
    }

    [Fact]
    public async Task A_peeked_room_turns_up_only_in_the_sync_of_the_device_that_peeked()
    {
        var (alice, bob, roomId, since) = await RoomAndOutsiderAsync();
        var bobsLaptop = await MatrixTestClient.LoginAsync(fx.B, bob.UserId, bob.Password);
        var laptopSince = (await bobsLaptop.SyncAsync()).NextBatch();

        (await bob.PostAsync(Peek(roomId), new JsonObject())).EnsureSuccess();
        await alice.SendTextAsync(roomId, "something to peek");
        await fx.SettleAsync();

        Assert.Equal("something to peek", LastBody(PeekTimeline(await bob.On(fx.B).SyncAsync(since), roomId)));
        var laptop = await bobsLaptop.SyncAsync(laptopSince);
        Assert.Equal(0, PeekedCount(laptop));
        Assert.Equal(0, PeekedCount(await bobsLaptop.SyncAsync()));

        await alice.SendTextAsync(roomId, "something else to peek");
        await fx.SettleAsync();
        Assert.Equal(0, PeekedCount(await bobsLaptop.SyncAsync(laptop.NextBatch())));
    }

    [Fact]
    public async Task Unpeeking_stops_the_room_showing_and_is_idempotent()
    {
        var (alice, bob, roomId, since) = await RoomAndOutsiderAsync();
        (await bob.PostAsync(Peek(roomId), new JsonObject())).EnsureSuccess();
        var shown = await bob.On(fx.B).SyncAsync(since);
        Assert.NotNull(Peeked(shown, roomId));

        (await bob.PostAsync($"{Room(roomId)}/unpeek", new JsonObject())).EnsureSuccess();
        (await bob.On(fx.B).PostAsync($"{Room(roomId)}/unpeek", new JsonObject())).EnsureSuccess();
        await alice.SendTextAsync(roomId, "after the unpeek");
        await fx.SettleAsync();

        Assert.Null(Peeked(await bob.On(fx.B).SyncAsync(shown.NextBatch()), roomId));
        Assert.Equal(0, PeekedCount(await bob.On(fx.B).SyncAsync()));
    }

    [Fact]
    public async Task A_room_that_stops_being_world_readable_shows_no_new_events_to_its_peekers()
    {
        var (alice, bob, roomId, since) = await RoomAndOutsiderAsync();
        (await bob.PostAsync(Peek(roomId), new JsonObject())).EnsureSuccess();
        var shown = await bob.On(fx.B).SyncAsync(since);
        Assert.NotNull(Peeked(shown, roomId));

        await SetVisibilityAsync(alice, roomId, "shared");
        await alice.SendTextAsync(roomId, "members only");
        await fx.SettleAsync();

        var after = await bob.On(fx.B).SyncAsync(shown.NextBatch());
        Assert.DoesNotContain("members only", PeekTimeline(after, roomId).Select(e => e!["content"]?["body"]?.GetValue<string>()));
        Assert.DoesNotContain("members only", after.Text);
    }

    [Fact]
    public async Task Joining_a_peeked_room_moves_it_to_join_and_ends_the_peek()
    {
        var (alice, bob, roomId, since) = await RoomAndOutsiderAsync(create: new JsonObject { ["preset"] = "public_chat" });
        (await bob.PostAsync(Peek(roomId), new JsonObject())).EnsureSuccess();
        var shown = await bob.On(fx.B).SyncAsync(since);
        Assert.NotNull(Peeked(shown, roomId));

        await bob.JoinAsync(roomId);
        await alice.SendTextAsync(roomId, "as a member");
        await fx.SettleAsync();
        var joined = await bob.On(fx.B).SyncAsync(shown.NextBatch());
        Assert.Equal("as a member", LastBody(joined.RoomEvents(roomId, "timeline")));
        Assert.Null(Peeked(joined, roomId));

        // The peek ended with the join: leaving does not bring the room back under peek.
        (await bob.PostAsync($"{Room(roomId)}/leave")).EnsureSuccess();
        await alice.SendTextAsync(roomId, "after bob left");
        await fx.SettleAsync();
        var left = await bob.On(fx.B).SyncAsync(joined.NextBatch());
        Assert.Null(Peeked(left, roomId));
        Assert.Equal(0, PeekedCount(await bob.On(fx.B).SyncAsync()));
    }

    [Fact]
    public async Task Peeking_a_room_one_is_joined_to_keeps_it_under_join()
    {
        var (alice, bob, roomId, _) = await RoomAndOutsiderAsync(create: new JsonObject { ["preset"] = "public_chat" });
        await bob.JoinAsync(roomId);
        var since = (await bob.On(fx.B).SyncAsync()).NextBatch();

        var peeked = (await bob.PostAsync(Peek(roomId), new JsonObject())).EnsureSuccess();
        Assert.Equal(roomId, peeked["room_id"].GetValue<string>());
        await alice.SendTextAsync(roomId, "to a member");
        await fx.SettleAsync();

        var sync = await bob.On(fx.B).SyncAsync(since);
        Assert.Equal("to a member", LastBody(sync.RoomEvents(roomId, "timeline")));
        Assert.Equal(0, PeekedCount(sync));
    }

    [Fact]
    public async Task A_deleted_device_peeks_no_more_even_when_its_id_is_used_again()
    {
        var (alice, bob, roomId, _) = await RoomAndOutsiderAsync();
        var phone = await MatrixTestClient.LoginAsync(fx.A, bob.UserId, bob.Password, deviceId: "PHONE");
        (await phone.PostAsync(Peek(roomId), new JsonObject())).EnsureSuccess();
        Assert.NotNull(Peeked(await phone.On(fx.B).SyncAsync(), roomId));

        var body = new JsonObject { ["devices"] = new JsonArray("PHONE") };
        var challenge = await bob.PostAsync($"{V3}/delete_devices", body);
        Assert.Equal(401, challenge.StatusCode);
        body["auth"] = new JsonObject
        {
            ["type"] = "m.login.password",
            ["identifier"] = new JsonObject { ["type"] = "m.id.user", ["user"] = bob.UserId },
            ["password"] = bob.Password,
            ["session"] = challenge["session"].GetValue<string>(),
        };
        (await bob.PostAsync($"{V3}/delete_devices", body)).EnsureSuccess();
        await fx.SettleAsync();

        await using (var count = fx.A.Get<Npgsql.NpgsqlDataSource>().CreateCommand("SELECT count(*) FROM room_peeks WHERE user_id = $1"))
        {
            count.Parameters.AddWithValue(bob.UserId);
            Assert.Equal(0L, (long)(await count.ExecuteScalarAsync())!);
        }
        var phoneAgain = await MatrixTestClient.LoginAsync(fx.A, bob.UserId, bob.Password, deviceId: "PHONE");
        await alice.SendTextAsync(roomId, "after the phone was deleted");
        await fx.SettleAsync();
        Assert.Equal(0, PeekedCount(await phoneAgain.On(fx.B).SyncAsync()));
    }
}

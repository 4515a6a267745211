using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.UserStreams;

[Collection(UserStreamsHttpCollection.Name)]
public sealed class TypingHttpTests(UserStreamsHttpCluster fx)
{
    private static string Typing(string roomId, string userId) => $"{Room(roomId)}/typing/{E(userId)}";

    /// <summary>The room's m.typing user ids joined by commas, or null when the sync carried no m.typing.</summary>
    private static string? TypingUsers(MatrixResponse sync, string roomId) =>
        sync.RoomEvents(roomId, "ephemeral").FirstOrDefault(e => e!["type"]!.GetValue<string>() == "m.typing") is { } e
            ? string.Join(",", e["content"]!["user_ids"]!.AsArray().Select(u => u!.GetValue<string>()))
            : null;

    private async Task<(MatrixTestClient Alice, MatrixTestClient BobOnB, string RoomId)> RoomAsync()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        (await bob.PostAsync($"{Room(roomId)}/join")).EnsureSuccess();
        await fx.SettleAsync();
        return (alice, bob.On(fx.B), roomId);
    }

    [Fact]
    public async Task Typing_on_one_silo_wakes_the_other_members_long_poll_on_the_other_silo()
    {
        var (alice, bob, roomId) = await RoomAsync();
        var since = (await bob.SyncAsync()).NextBatch();
        var poll = bob.SyncAsync(since, timeoutMs: 20_000);
        await Task.Delay(200);
        Assert.False(poll.IsCompleted);
        (await alice.PutAsync(Typing(roomId, alice.UserId), new { typing = true, timeout = 30_000 })).EnsureSuccess();
        var typing = await poll;
        Assert.Equal(alice.UserId, TypingUsers(typing, roomId));
        var ev = typing.RoomEvents(roomId, "ephemeral").First(e => e!["type"]!.GetValue<string>() == "m.typing")!.AsObject();
        Assert.False(ev.ContainsKey("room_id"));

        // Unchanged: not repeated.
        Assert.Null(TypingUsers(await bob.SyncAsync(typing.NextBatch()), roomId));
        // An initial sync shows who is typing now.
        Assert.Equal(alice.UserId, TypingUsers(await bob.SyncAsync(), roomId));

        (await alice.PutAsync(Typing(roomId, alice.UserId), new { typing = false })).EnsureSuccess();
        var stopped = await bob.SyncAsync(typing.NextBatch(), timeoutMs: 20_000);
        Assert.Equal("", TypingUsers(stopped, roomId));
    }

    [Fact]
    public async Task Typing_expires_after_its_timeout_and_the_expiry_reaches_sync()
    {
        var (alice, bob, roomId) = await RoomAsync();
        // 5 s: long enough for the first sync to see it on a loaded machine (2 s was not, at load 10-40).
        (await alice.PutAsync(Typing(roomId, alice.UserId), new { typing = true, timeout = 5000 })).EnsureSuccess();
        await fx.SettleAsync();
        var started = await bob.SyncAsync();
        Assert.Equal(alice.UserId, TypingUsers(started, roomId));
        var expired = await bob.SyncAsync(started.NextBatch(), timeoutMs: 20_000);
        Assert.Equal("", TypingUsers(expired, roomId));
    }

    [Fact]
    public async Task Typing_errors()
    {
        var (alice, bob, roomId) = await RoomAsync();
        var eve = await fx.UserAsync("eve");
        AssertError(await eve.PutAsync(Typing(roomId, eve.UserId), new { typing = true }), 403, "M_FORBIDDEN");
        AssertError(await alice.PutAsync(Typing(roomId, bob.UserId), new { typing = true }), 403, "M_FORBIDDEN");
        AssertError(await alice.PutAsync(Typing(roomId, alice.UserId), new { timeout = 5 }), 400, "M_BAD_JSON");
        AssertError(await alice.PutAsync(Typing(roomId, alice.UserId), new { typing = true, timeout = "soon" }), 400, "M_BAD_JSON");
        AssertError(await alice.PutAsync(Typing("not-a-room", alice.UserId), new { typing = true }), 400, "M_INVALID_PARAM");
        AssertError(await alice.PutAsync(Typing("!missing:localhost", alice.UserId), new { typing = true }), 403, "M_FORBIDDEN");
        Assert.Equal(401, (await fx.A.Http.PutJsonAsync(Typing(roomId, alice.UserId), new { typing = true })).StatusCode);
    }

    [Fact]
    public async Task A_silo_started_later_knows_who_is_typing_now()
    {
        await using var cluster = await HomeserverTestCluster.StartAsync(silos: 1);
        var alice = await MatrixTestClient.RegisterAsync(cluster.Silos[0]);
        var bob = await MatrixTestClient.RegisterAsync(cluster.Silos[0]);
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        (await bob.PostAsync($"{Room(roomId)}/join")).EnsureSuccess();
        (await alice.PutAsync(Typing(roomId, alice.UserId), new { typing = true, timeout = 60_000 })).EnsureSuccess();

        var later = await cluster.StartSiloAsync();
        Assert.Equal(alice.UserId, TypingUsers(await bob.On(later).SyncAsync(), roomId));
        // And it follows changes from then on.
        (await alice.PutAsync(Typing(roomId, alice.UserId), new { typing = false })).EnsureSuccess();
        var sinceStart = (await bob.On(later).SyncAsync()).NextBatch();
        Assert.Null(TypingUsers(await bob.On(later).SyncAsync(sinceStart), roomId));
        Assert.Null(TypingUsers(await bob.On(later).SyncAsync(), roomId));
    }
}

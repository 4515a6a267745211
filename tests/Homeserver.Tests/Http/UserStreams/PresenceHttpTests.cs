using System.Diagnostics;
using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.UserStreams;

[Collection(UserStreamsHttpCollection.Name)]
public sealed class PresenceHttpTests(UserStreamsHttpCluster fx)
{
    private static string Status(string userId) => $"{V3}/presence/{E(userId)}/status";

    internal static JsonNode? PresenceOf(MatrixResponse sync, string userId) =>
        sync.Events("presence").LastOrDefault(e => e!["sender"]!.GetValue<string>() == userId)?["content"];

    [Fact]
    public async Task Presence_is_set_read_and_reaches_room_members_long_polling_on_the_other_silo()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        (await bob.PostAsync($"{Room(roomId)}/join")).EnsureSuccess();
        await fx.SettleAsync();
        var bobOnB = bob.On(fx.B);
        var since = (await bobOnB.SyncAsync(extra: "&set_presence=offline")).NextBatch();

        var poll = bobOnB.SyncAsync(since, timeoutMs: 20_000, extra: "&set_presence=offline");
        await Task.Delay(200);
        Assert.False(poll.IsCompleted);
        (await alice.PutAsync(Status(alice.UserId), new { presence = "unavailable", status_msg = "lunch" })).EnsureSuccess();
        var seen = PresenceOf(await poll, alice.UserId)!;
        Assert.Equal("unavailable", seen["presence"]!.GetValue<string>());
        Assert.Equal("lunch", seen["status_msg"]!.GetValue<string>());
        Assert.False(seen["currently_active"]!.GetValue<bool>());

        await fx.SettleAsync();
        var got = (await bobOnB.GetAsync(Status(alice.UserId))).EnsureSuccess();
        Assert.Equal("unavailable", got["presence"].GetValue<string>());
        Assert.Equal("lunch", got["status_msg"].GetValue<string>());

        // A sync of alice's (set_presence defaults to online) makes her online and tells bob.
        var before = (await bobOnB.SyncAsync(extra: "&set_presence=offline")).NextBatch();
        await alice.SyncAsync();
        var online = PresenceOf(await bobOnB.SyncAsync(before, timeoutMs: 20_000, extra: "&set_presence=offline"), alice.UserId)!;
        Assert.Equal("online", online["presence"]!.GetValue<string>());
        Assert.True(online["currently_active"]!.GetValue<bool>());
        Assert.Equal("lunch", online["status_msg"]!.GetValue<string>());
        Assert.True(online["last_active_ago"]!.GetValue<long>() >= 0);
    }

    [Fact]
    public async Task Whoever_newly_shares_a_room_brings_their_presence_into_an_incremental_sync()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        var carol = await fx.UserAsync("carol");
        (await alice.PutAsync(Status(alice.UserId), new { presence = "online", status_msg = "here" })).EnsureSuccess();
        (await carol.PutAsync(Status(carol.UserId), new { presence = "unavailable" })).EnsureSuccess();
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        await fx.SettleAsync();
        var bobOnB = bob.On(fx.B);
        var since = (await bobOnB.SyncAsync(extra: "&set_presence=offline")).NextBatch();

        // Bob joins Alice's room: Alice's presence, set before, comes with the room.
        (await bob.PostAsync($"{Room(roomId)}/join")).EnsureSuccess();
        await fx.SettleAsync();
        var joined = await bobOnB.SyncAsync(since, timeoutMs: 5_000, extra: "&set_presence=offline");
        Assert.Equal("here", PresenceOf(joined, alice.UserId)?["status_msg"]?.GetValue<string>());

        // Carol joins it later: hers comes with her join.
        (await carol.PostAsync($"{Room(roomId)}/join")).EnsureSuccess();
        await fx.SettleAsync();
        var next = await bobOnB.SyncAsync(joined.NextBatch(), timeoutMs: 5_000, extra: "&set_presence=offline");
        Assert.Equal("unavailable", PresenceOf(next, carol.UserId)?["presence"]?.GetValue<string>());

        // Someone who was never online (every sync of theirs said offline) is offline, not absent.
        var dan = await fx.UserAsync("dan");
        (await dan.PostAsync($"{Room(roomId)}/join")).EnsureSuccess();
        await fx.SettleAsync();
        var last = await bobOnB.SyncAsync(next.NextBatch(), timeoutMs: 5_000, extra: "&set_presence=offline");
        Assert.Equal("offline", PresenceOf(last, dan.UserId)?["presence"]?.GetValue<string>());
    }

    [Fact]
    public async Task A_new_users_first_sync_shows_its_own_presence()
    {
        var dave = await fx.UserAsync("dave");
        var sync = await dave.On(fx.B).SyncAsync();
        Assert.Equal("online", PresenceOf(sync, dave.UserId)?["presence"]?.GetValue<string>());
    }

    [Fact]
    public async Task Presence_errors()
    {
        var alice = await fx.UserAsync("alice");
        var eve = await fx.UserAsync("eve");
        AssertError(await eve.GetAsync(Status(alice.UserId)), 403, "M_FORBIDDEN");
        AssertError(await eve.PutAsync(Status(alice.UserId), new { presence = "online" }), 403, "M_FORBIDDEN");
        AssertError(await alice.PutAsync(Status(alice.UserId), new { presence = "asleep" }), 400, "M_INVALID_PARAM");
        AssertError(await alice.PutAsync(Status(alice.UserId), new { status_msg = "x" }), 400, "M_MISSING_PARAM");
        AssertError(await alice.PutAsync(Status(alice.UserId), new { presence = "online", status_msg = 3 }), 400, "M_BAD_JSON");
        Assert.Equal(401, (await fx.A.Http.GetJsonAsync(Status(alice.UserId))).StatusCode);
        Assert.Equal("offline", (await eve.GetAsync(Status(eve.UserId))).EnsureSuccess()["presence"].GetValue<string>());
    }
}

/// <summary>Presence with a one-second idle or sync timeout, and with presence disabled.</summary>
public sealed class PresenceConfigurationTests
{
    /// <summary>Two silos with <paramref name="oneSecondSetting"/> set to a second; alice on the first and bob on the
    /// second share a public room.</summary>
    private static async Task<(HomeserverTestCluster, MatrixTestClient Alice, MatrixTestClient Bob)> SharedRoomAsync(string oneSecondSetting)
    {
        var cluster = await HomeserverTestCluster.StartAsync(silos: 2, new Dictionary<string, string?> { [oneSecondSetting] = "00:00:01" });
        var alice = await MatrixTestClient.RegisterAsync(cluster.Silos[0]);
        var bob = (await MatrixTestClient.RegisterAsync(cluster.Silos[0])).On(cluster.Silos[1]);
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        (await bob.PostAsync($"{Room(roomId)}/join")).EnsureSuccess();
        return (cluster, alice, bob);
    }

    [Fact]
    public async Task An_online_user_without_activity_becomes_unavailable()
    {
        var (cluster, alice, bob) = await SharedRoomAsync("Homeserver:PresenceIdleTimeout");
        await using var _ = cluster;
        (await alice.PutAsync($"{V3}/presence/{E(alice.UserId)}/status", new { presence = "online" })).EnsureSuccess();
        var first = await bob.SyncAsync(extra: "&set_presence=offline");
        Assert.Equal("online", PresenceHttpTests.PresenceOf(first, alice.UserId)!["presence"]!.GetValue<string>());
        // Nothing but the idle timer can change alice's presence now; bob's long-poll on the other silo sees it.
        var idle = await bob.SyncAsync(first.NextBatch(), timeoutMs: 10_000, extra: "&set_presence=offline");
        var presence = PresenceHttpTests.PresenceOf(idle, alice.UserId)!;
        Assert.Equal("unavailable", presence["presence"]!.GetValue<string>());
        Assert.False(presence["currently_active"]!.GetValue<bool>());
    }

    [Fact]
    public async Task A_user_whose_clients_stop_syncing_goes_offline_but_not_while_a_long_poll_waits()
    {
        var (cluster, alice, bob) = await SharedRoomAsync("Homeserver:PresenceSyncTimeout");
        await using var _ = cluster;

        // Alice's long-poll waits 2.5 s, longer than the sync timeout: she stays online throughout it.
        var aliceSince = (await alice.SyncAsync()).NextBatch();
        var bobSince = (await bob.SyncAsync(extra: "&set_presence=offline")).NextBatch();
        var waited = Stopwatch.StartNew();
        await alice.SyncAsync(aliceSince, timeoutMs: 2_500);
        Assert.True(waited.Elapsed >= TimeSpan.FromSeconds(2), "alice's long-poll should have waited");
        var during = await bob.SyncAsync(bobSince, timeoutMs: 0, extra: "&set_presence=offline");
        Assert.DoesNotContain(during.Events("presence"), e => e!["content"]!["presence"]!.GetValue<string>() == "offline");
        Assert.Equal("online", (await bob.GetAsync($"{V3}/presence/{E(alice.UserId)}/status")).EnsureSuccess()["presence"].GetValue<string>());

        // Then she stops syncing: about a second later bob's long-poll on the other silo sees her go offline.
        var gone = await bob.SyncAsync(during.NextBatch(), timeoutMs: 10_000, extra: "&set_presence=offline");
        var presence = PresenceHttpTests.PresenceOf(gone, alice.UserId)!;
        Assert.Equal("offline", presence["presence"]!.GetValue<string>());
        Assert.False(presence["currently_active"]!.GetValue<bool>());
        await cluster.Silos[0].Get<Homeserver.Streams.StreamNotifier>().WaitForTokenAsync(
            cluster.Silos[1].Get<Homeserver.Streams.StreamNotifier>().Current, TimeSpan.FromSeconds(5));
        Assert.Equal("offline", (await alice.GetAsync($"{V3}/presence/{E(alice.UserId)}/status")).EnsureSuccess()["presence"].GetValue<string>());
    }

    [Fact]
    public async Task A_user_left_online_by_a_lost_grain_is_taken_offline_by_the_watchdog()
    {
        await using var cluster = await HomeserverTestCluster.StartAsync(silos: 2,
            new Dictionary<string, string?> { ["Homeserver:PresenceSyncTimeout"] = "00:00:01" });
        // As a silo that died would leave it: stored online, and no grain anywhere to time it out.
        var db = cluster.Silos[0].Get<Npgsql.NpgsqlDataSource>();
        await using (var cmd = db.CreateCommand(
            "INSERT INTO presence (user_id, state, status_msg, last_active_ts, currently_active, stream_position) VALUES ('@ghost:localhost', 'online', NULL, 0, true, 1)"))
            await cmd.ExecuteNonQueryAsync();
        var store = cluster.Silos[1].Get<Homeserver.Presence.PresenceStore>();
        await Task.Delay(1500);
        Assert.Equal("online", (await store.GetAsync("@ghost:localhost"))!.State);

        var watchdog = cluster.Silos[1].Services.GetServices<Homeserver.Streams.IStreamHousekeeper>().OfType<Homeserver.Presence.PresenceWatchdog>().Single();
        await watchdog.RunAsync(CancellationToken.None);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while ((await store.GetAsync("@ghost:localhost"))!.State != "offline" && DateTime.UtcNow < deadline) await Task.Delay(100);
        Assert.Equal("offline", (await store.GetAsync("@ghost:localhost"))!.State);
    }

    /// <summary>A lazy-loading sync from scratch reads who shares the user's rooms without their states; the long-poll
    /// after it wakes on a co-member's presence from those sets, which the reader moves forward with every membership
    /// change (a member who joined wakes it, one who left does not).</summary>
    [Fact]
    public async Task A_long_poll_after_a_lazy_sync_from_scratch_wakes_on_members_without_reading_room_states()
    {
        await using var cluster = await HomeserverTestCluster.StartAsync(silos: 2);
        var alice = await MatrixTestClient.RegisterAsync(cluster.Silos[0]);
        var bob = (await MatrixTestClient.RegisterAsync(cluster.Silos[0])).On(cluster.Silos[1]);
        var carol = await MatrixTestClient.RegisterAsync(cluster.Silos[0]);
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        (await bob.PostAsync($"{Room(roomId)}/join")).EnsureSuccess();
        var siloB = cluster.Silos[1];
        async Task SettleOnB() => await siloB.Get<Homeserver.Streams.StreamNotifier>().WaitForTokenAsync(
            cluster.Silos[0].Get<Homeserver.Streams.StreamNotifier>().Current, TimeSpan.FromSeconds(5));
        await SettleOnB();
        var caches = siloB.Get<Homeserver.Caches.CacheRegistry>();
        caches.InvalidateAll(Homeserver.Rooms.RoomCaches.CurrentState);
        caches.InvalidateAll(Homeserver.Rooms.RoomCaches.JoinedMembers);

        var lazy = "&set_presence=offline&filter=" + Uri.EscapeDataString("""{"room":{"state":{"lazy_load_members":true}}}""");
        var first = await bob.SyncAsync(extra: lazy);
        Assert.False(Homeserver.Rooms.RoomCaches.CurrentStates(caches).TryGet(roomId, out _), "a lazy sync from scratch read the room's whole state");
        Assert.True(Homeserver.Rooms.RoomCaches.JoinedMemberSets(caches).TryGet(roomId, out var members));
        Assert.Equal(new[] { alice.UserId, bob.UserId }.Order(StringComparer.Ordinal), members.ToList());

        var poll = bob.SyncAsync(first.NextBatch(), timeoutMs: 20_000, extra: lazy);
        await Task.Delay(200);
        Assert.False(poll.IsCompleted);
        (await alice.PutAsync($"{V3}/presence/{E(alice.UserId)}/status", new { presence = "unavailable" })).EnsureSuccess();
        var woken = await poll;
        Assert.Equal("unavailable", PresenceHttpTests.PresenceOf(woken, alice.UserId)?["presence"]?.GetValue<string>());

        // Carol joins, then leaves: the set follows each change, and her presence after leaving reaches no one.
        (await carol.PostAsync($"{Room(roomId)}/join")).EnsureSuccess();
        await SettleOnB();
        Assert.True(Homeserver.Rooms.RoomCaches.JoinedMemberSets(caches).TryGet(roomId, out members));
        Assert.Contains(carol.UserId, members);
        (await carol.PostAsync($"{Room(roomId)}/leave")).EnsureSuccess();
        await SettleOnB();
        Assert.True(Homeserver.Rooms.RoomCaches.JoinedMemberSets(caches).TryGet(roomId, out members));
        Assert.DoesNotContain(carol.UserId, members);
        var since = (await bob.SyncAsync(woken.NextBatch(), extra: lazy)).NextBatch();
        var quiet = bob.SyncAsync(since, timeoutMs: 1_500, extra: lazy);
        (await carol.PutAsync($"{V3}/presence/{E(carol.UserId)}/status", new { presence = "online" })).EnsureSuccess();
        Assert.Null(PresenceHttpTests.PresenceOf(await quiet, carol.UserId));
    }

    [Fact]
    public async Task Disabled_presence_accepts_updates_but_reports_offline_and_sends_nothing()
    {
        await using var cluster = await HomeserverTestCluster.StartAsync(silos: 2,
            new Dictionary<string, string?> { ["Homeserver:EnablePresence"] = "false" });
        var alice = await MatrixTestClient.RegisterAsync(cluster.Silos[0]);
        (await alice.PutAsync($"{V3}/presence/{E(alice.UserId)}/status", new { presence = "online", status_msg = "hi" })).EnsureSuccess();
        AssertError(await alice.PutAsync($"{V3}/presence/{E(alice.UserId)}/status", new { presence = "asleep" }), 400, "M_INVALID_PARAM");
        var got = (await alice.On(cluster.Silos[1]).GetAsync($"{V3}/presence/{E(alice.UserId)}/status")).EnsureSuccess();
        Assert.Equal("""{"presence":"offline"}""", got.Body!.ToJsonString());
        Assert.Empty((await alice.SyncAsync()).Events("presence"));
    }
}

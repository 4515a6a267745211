using System.Diagnostics;
using System.Text.Json.Nodes;
using Homeserver.Presence;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.UserStreams;

/// <summary>Synapse's <c>LAST_ACTIVE_GRANULARITY</c> (here two seconds): an online user's activity moves last_active
/// without a row or a wake-up; a minute (here two seconds) without activity is told once, and so is activity after it.</summary>
public sealed class PresenceGranularityTests
{
    [Fact]
    public async Task Activity_of_an_online_user_wakes_nobody_within_the_granularity_and_its_end_and_return_are_told()
    {
        await using var cluster = await HomeserverTestCluster.StartAsync(silos: 2, new Dictionary<string, string?>
        {
            ["Homeserver:PresenceLastActiveGranularity"] = "00:00:02",
            ["Homeserver:PresenceWakeDelay"] = "00:00:00",
        });
        var alice = await MatrixTestClient.RegisterAsync(cluster.Silos[0]);
        var bob = (await MatrixTestClient.RegisterAsync(cluster.Silos[0])).On(cluster.Silos[1]);
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        (await bob.PostAsync($"{Room(roomId)}/join")).EnsureSuccess();
        await alice.SyncAsync(); // online
        // Her next activity comes at least this long after the first (well within the granularity), so that a
        // last_active that did not move shows in last_active_ago below.
        await Task.Delay(300);
        var first = await bob.SyncAsync(extra: "&set_presence=offline");
        Assert.True(PresenceHttpTests.PresenceOf(first, alice.UserId)!["currently_active"]!.GetValue<bool>());

        // Alice keeps syncing: no row (the grain answers 0), and bob's long-poll on the other silo is not woken.
        var clock = Stopwatch.StartNew();
        var poll = bob.SyncAsync(first.NextBatch(), timeoutMs: 15_000, extra: "&set_presence=offline");
        var beforeActivity = clock.Elapsed;
        await alice.SyncAsync();
        Assert.Equal(0, await cluster.Silos[0].Grains.GetGrain<IPresenceGrain>(alice.UserId).SyncedAsync("online", TimeSpan.Zero));
        var lastActivity = clock.Elapsed;
        await Task.Delay(800);
        Assert.False(poll.IsCompleted);
        // Her last_active moved all the same: GET reads the grain.
        var got = (await bob.GetAsync($"{V3}/presence/{E(alice.UserId)}/status")).EnsureSuccess();
        // No more than the time since her second sync began (the server reads its clock before ours is read here; a
        // fixed bound failed on CI when the GET itself was slow), and a last_active left at the first sync would be
        // at least 300 ms more.
        var sinceActivity = clock.Elapsed - beforeActivity;
        Assert.InRange(got["last_active_ago"].GetValue<long>(), 0, (long)sinceActivity.TotalMilliseconds + 50);

        // Two seconds without activity: bob is told once that she is no longer currently active (still online).
        var stale = PresenceHttpTests.PresenceOf(await poll, alice.UserId)!;
        Assert.True(clock.Elapsed - lastActivity >= TimeSpan.FromSeconds(1.8), $"woken {clock.Elapsed - lastActivity} after her last activity");
        Assert.Equal("online", stale["presence"]!.GetValue<string>());
        Assert.False(stale["currently_active"]!.GetValue<bool>());

        // Activity after that is told too.
        var since = (await bob.SyncAsync(extra: "&set_presence=offline")).NextBatch();
        var next = bob.SyncAsync(since, timeoutMs: 15_000, extra: "&set_presence=offline");
        await alice.SyncAsync();
        var back = PresenceHttpTests.PresenceOf(await next, alice.UserId)!;
        Assert.True(back["currently_active"]!.GetValue<bool>());

        // And a change of state at once.
        since = (await bob.SyncAsync(extra: "&set_presence=offline")).NextBatch();
        next = bob.SyncAsync(since, timeoutMs: 15_000, extra: "&set_presence=offline");
        (await alice.PutAsync($"{V3}/presence/{E(alice.UserId)}/status", new { presence = "unavailable" })).EnsureSuccess();
        Assert.Equal("unavailable", PresenceHttpTests.PresenceOf(await next, alice.UserId)!["presence"]!.GetValue<string>());
    }
}

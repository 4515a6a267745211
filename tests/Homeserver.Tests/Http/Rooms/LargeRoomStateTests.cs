using System.Text.Json.Nodes;
using Homeserver.Caches;
using Homeserver.Rooms;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.Rooms;

/// <summary>
/// A room's state is one shared snapshot per silo that every state event moves forward in place (issue 13, large
/// rooms): a join leaves each silo's cached state holding the new member, not dropped to be loaded again in full.
/// </summary>
[Collection(RoomsHttpCollection.Name)]
public sealed class LargeRoomStateTests(RoomsHttpCluster fixture)
{
    [Fact]
    public async Task A_join_moves_every_silos_cached_state_forward_without_reloading_it()
    {
        var owner = await fixture.UserAsync("bigroom-owner");
        var reader = await fixture.UserAsync("bigroom-reader", fixture.B);
        var joiner = await fixture.UserAsync("bigroom-joiner");
        var roomId = await owner.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        await reader.JoinAsync(roomId);
        await fixture.SettleAsync();
        // The reader's member list fills silo B's cache.
        Assert.Equal(2, (await reader.GetAsync($"{MatrixPaths.Room(roomId)}/joined_members")).EnsureSuccess()["joined"].AsObject().Count);
        var cache = fixture.B.Get<CacheRegistry>().Get<CurrentRoomState>(RoomCaches.CurrentState);
        Assert.True(cache.TryGet(roomId, out var before));

        await joiner.JoinAsync(roomId);
        await fixture.SettleAsync();

        // Nobody read the room on B since: the entry is there because the reader applied the join to it.
        Assert.True(cache.TryGet(roomId, out var after), "the join dropped silo B's cached state instead of applying to it");
        Assert.NotSame(before, after);
        Assert.Equal("join", after.Membership(joiner.UserId));
        Assert.Contains(joiner.UserId, after.JoinedMembers);
        Assert.Null(before.Membership(joiner.UserId));
        Assert.Equal(3, after.JoinedMemberCount);

        var members = (await reader.GetAsync($"{MatrixPaths.Room(roomId)}/members")).EnsureSuccess()["chunk"].AsArray();
        Assert.Contains(members, m => m!["state_key"]!.GetValue<string>() == joiner.UserId);
    }

    [Fact]
    public async Task The_summary_counts_and_heroes_follow_joins_and_leaves()
    {
        var owner = await fixture.UserAsync("summary-owner");
        var others = new List<MatrixTestClient>();
        for (var i = 0; i < 7; i++) others.Add(await fixture.UserAsync($"summary-m{i}", i % 2 == 0 ? fixture.B : fixture.A));
        var roomId = await owner.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        foreach (var o in others) await o.JoinAsync(roomId);
        (await others[0].PostAsync($"{MatrixPaths.Room(roomId)}/leave")).EnsureSuccess();
        await fixture.SettleAsync();

        var sync = (await owner.GetAsync($"{MatrixPaths.V3}/sync?timeout=0")).EnsureSuccess();
        var summary = sync["rooms"]["join"]![roomId]?["summary"] ?? throw new Xunit.Sdk.XunitException("no summary");
        Assert.Equal(7, summary["m.joined_member_count"]!.GetValue<int>());
        Assert.Equal(0, summary["m.invited_member_count"]!.GetValue<int>());
        var expected = others.Skip(1).Select(o => o.UserId).Order(StringComparer.Ordinal).Take(5);
        Assert.Equal(expected, summary["m.heroes"]!.AsArray().Select(h => h!.GetValue<string>()));
    }
}

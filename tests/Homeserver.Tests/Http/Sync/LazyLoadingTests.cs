using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.Sync;

/// <summary>Lazy-loaded members (spec "Lazy-loading room members") in /sync and /messages.</summary>
public sealed class LazyLoadingTests(LazyLoadingTests.Fixture fixture) : IClassFixture<LazyLoadingTests.Fixture>
{
    public sealed class Fixture : TwoSiloCluster;

    private HomeserverTestCluster Cluster => fixture.Cluster;

    private static string Filter(int limit, bool redundant = false) => Uri.EscapeDataString(new JsonObject
    {
        ["room"] = new JsonObject
        {
            ["timeline"] = new JsonObject { ["limit"] = limit },
            ["state"] = new JsonObject { ["lazy_load_members"] = true, ["include_redundant_members"] = redundant },
        },
    }.ToJsonString());

    private static string[] Members(JsonNode sync, string roomId) =>
        (sync["rooms"]?["join"]?[roomId]?["state"]?["events"]?.AsArray() ?? [])
        .Where(e => e!["type"]!.GetValue<string>() == "m.room.member").Select(e => e!["state_key"]!.GetValue<string>()).Order().ToArray();

    private static string[] StateTypes(JsonNode sync, string roomId) =>
        (sync["rooms"]?["join"]?[roomId]?["state"]?["events"]?.AsArray() ?? []).Select(e => e!["type"]!.GetValue<string>()).ToArray();

    [Fact]
    public async Task Only_the_members_the_timeline_needs_are_sent_once_per_device()
    {
        var alice = await MatrixTestClient.RegisterAsync(Cluster.Silos[0]);
        var bob = await MatrixTestClient.RegisterAsync(Cluster.Silos[1]);
        var charlie = await MatrixTestClient.RegisterAsync(Cluster.Silos[0]);
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat", ["name"] = "Lazy" });
        await bob.JoinAsync(roomId);
        await charlie.JoinAsync(roomId);
        for (var i = 0; i < 3; i++) await bob.SendTextAsync(roomId, $"bob {i}");
        for (var i = 0; i < 3; i++) await charlie.SendTextAsync(roomId, $"charlie {i}");

        // From scratch: the timeline's sender and the user, and all the other state.
        var initial = (await alice.GetAsync($"{V3}/sync?filter={Filter(3)}")).EnsureSuccess();
        Assert.Equal(new[] { alice.UserId, charlie.UserId }.Order().ToArray(), Members(initial.Body!, roomId));
        Assert.Contains("m.room.create", StateTypes(initial.Body!, roomId));
        Assert.Contains("m.room.name", StateTypes(initial.Body!, roomId));
        Assert.Equal(3, initial["rooms"]["join"]![roomId]!["summary"]!["m.joined_member_count"]!.GetValue<int>());

        // Bob speaks: only his member event is new to this device. Charlie speaks: nothing is.
        await bob.SendTextAsync(roomId, "bob again");
        var next = (await alice.GetAsync($"{V3}/sync?filter={Filter(3)}&since={Uri.EscapeDataString(initial["next_batch"].GetValue<string>())}&timeout=5000")).EnsureSuccess();
        Assert.Equal([bob.UserId], Members(next.Body!, roomId));
        Assert.Equal(["m.room.member"], StateTypes(next.Body!, roomId));
        await charlie.SendTextAsync(roomId, "charlie again");
        var then = (await alice.GetAsync($"{V3}/sync?filter={Filter(3)}&since={Uri.EscapeDataString(next["next_batch"].GetValue<string>())}&timeout=5000")).EnsureSuccess();
        Assert.Empty(Members(then.Body!, roomId));

        // Asked for redundant members, they come again.
        await charlie.SendTextAsync(roomId, "and again");
        var redundant = (await alice.GetAsync($"{V3}/sync?filter={Filter(3, redundant: true)}&since={Uri.EscapeDataString(then["next_batch"].GetValue<string>())}&timeout=5000")).EnsureSuccess();
        Assert.Equal([charlie.UserId], Members(redundant.Body!, roomId));

        // Without lazy loading, every member is there.
        var everyone = (await alice.GetAsync($"{V3}/sync")).EnsureSuccess();
        Assert.Equal(3, Members(everyone.Body!, roomId).Length + (everyone["rooms"]["join"]![roomId]!["timeline"]!["events"]!.AsArray()
            .Count(e => e!["type"]!.GetValue<string>() == "m.room.member")));
    }

    [Fact]
    public async Task Lazy_loading_flags_must_be_booleans()
    {
        var alice = await MatrixTestClient.RegisterAsync(Cluster.Silos[0]);
        foreach (var bad in new JsonNode[] { "true", 1 })
        {
            var filter = new JsonObject { ["room"] = new JsonObject { ["state"] = new JsonObject { ["lazy_load_members"] = bad.DeepClone() } } };
            AssertError(await alice.PostAsync($"{V3}/user/{E(alice.UserId)}/filter", filter), 400, "M_BAD_JSON");
            var redundant = new JsonObject { ["room"] = new JsonObject { ["state"] = new JsonObject { ["include_redundant_members"] = bad.DeepClone() } } };
            AssertError(await alice.PostAsync($"{V3}/user/{E(alice.UserId)}/filter", redundant), 400, "M_BAD_JSON");
        }
    }

    [Fact]
    public async Task Messages_with_lazy_loading_carry_the_senders_members()
    {
        var alice = await MatrixTestClient.RegisterAsync(Cluster.Silos[0]);
        var bob = await MatrixTestClient.RegisterAsync(Cluster.Silos[1]);
        var charlie = await MatrixTestClient.RegisterAsync(Cluster.Silos[1]);
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        await bob.JoinAsync(roomId);
        await charlie.JoinAsync(roomId);
        await charlie.SendTextAsync(roomId, "early");
        for (var i = 0; i < 3; i++) await bob.SendTextAsync(roomId, $"bob {i}");

        var filter = Uri.EscapeDataString("{\"lazy_load_members\":true}");
        var page = (await alice.GetAsync($"{Room(roomId)}/messages?dir=b&limit=3&filter={filter}")).EnsureSuccess();
        var members = page["state"].AsArray().Select(e => e!["state_key"]!.GetValue<string>()).ToArray();
        Assert.Equal([bob.UserId], members);
        Assert.Null((await alice.GetAsync($"{Room(roomId)}/messages?dir=b&limit=3")).EnsureSuccess().Body!["state"]);
    }
}

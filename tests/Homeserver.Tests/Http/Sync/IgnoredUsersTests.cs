using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.Sync;

/// <summary>m.ignored_user_list (spec "Ignoring Users") in /sync, on two silos.</summary>
public sealed class IgnoredUsersTests(IgnoredUsersTests.Fixture fixture) : IClassFixture<IgnoredUsersTests.Fixture>
{
    public sealed class Fixture : TwoSiloCluster;

    private HomeserverTestCluster Cluster => fixture.Cluster;

    private static string[] Bodies(JsonNode sync, string roomId) =>
        (sync["rooms"]?["join"]?[roomId]?["timeline"]?["events"]?.AsArray() ?? [])
        .Where(e => e!["type"]!.GetValue<string>() == "m.room.message").Select(e => e!["content"]!["body"]!.GetValue<string>()).ToArray();

    [Fact]
    public async Task Messages_and_invites_of_ignored_users_are_left_out_of_sync()
    {
        var alice = await MatrixTestClient.RegisterAsync(Cluster.Silos[0]);
        var bob = await MatrixTestClient.RegisterAsync(Cluster.Silos[1]);
        var carol = await MatrixTestClient.RegisterAsync(Cluster.Silos[1]);
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        await bob.JoinAsync(roomId);
        await carol.JoinAsync(roomId);
        await bob.SendTextAsync(roomId, "bob before");

        (await alice.PutAsync($"{V3}/user/{E(alice.UserId)}/account_data/m.ignored_user_list",
            new JsonObject { ["ignored_users"] = new JsonObject { [bob.UserId] = new JsonObject() } })).EnsureSuccess();
        await carol.SendTextAsync(roomId, "carol");
        var invite = await bob.CreateRoomAsync(new JsonObject { ["invite"] = new JsonArray(alice.UserId) });

        // Read on the other silo: its cache of the list is invalidated by the account data change.
        var onB = alice.On(Cluster.Silos[1]);
        var initial = (await onB.GetAsync($"{V3}/sync")).EnsureSuccess();
        Assert.Equal(["carol"], Bodies(initial.Body!, roomId));
        Assert.Null(initial["rooms"]["invite"]![invite]);
        // Bob's membership (state) stays: the room must add up.
        var members = initial["rooms"]["join"]![roomId]!["timeline"]!["events"]!.AsArray()
            .Concat(initial["rooms"]["join"]![roomId]!["state"]!["events"]!.AsArray())
            .Where(e => e!["type"]!.GetValue<string>() == "m.room.member").Select(e => e!["state_key"]!.GetValue<string>());
        Assert.Contains(bob.UserId, members);

        // A message of Bob's alone wakes nothing and brings no room; Carol's does.
        var since = initial["next_batch"].GetValue<string>();
        await bob.SendTextAsync(roomId, "bob after");
        var quiet = (await onB.GetAsync($"{V3}/sync?since={Uri.EscapeDataString(since)}&timeout=500")).EnsureSuccess();
        Assert.Null(quiet["rooms"]["join"]![roomId]);
        await carol.SendTextAsync(roomId, "carol again");
        var next = (await onB.GetAsync($"{V3}/sync?since={Uri.EscapeDataString(quiet["next_batch"].GetValue<string>())}&timeout=5000")).EnsureSuccess();
        Assert.Equal(["carol again"], Bodies(next.Body!, roomId));

        // No longer ignored: Bob's invite is there again from scratch.
        (await alice.PutAsync($"{V3}/user/{E(alice.UserId)}/account_data/m.ignored_user_list",
            new JsonObject { ["ignored_users"] = new JsonObject() })).EnsureSuccess();
        var again = (await onB.GetAsync($"{V3}/sync")).EnsureSuccess();
        Assert.NotNull(again["rooms"]["invite"]![invite]);
    }
}

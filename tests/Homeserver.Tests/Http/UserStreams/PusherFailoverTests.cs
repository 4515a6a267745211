using System.Text.Json.Nodes;
using Homeserver.Pushers;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.UserStreams;

/// <summary>Push delivery across the loss of the silo that was delivering (its own 3-silo cluster: one is killed).</summary>
public sealed class PusherFailoverTests
{
    [Fact]
    public async Task A_push_pending_on_a_silo_that_dies_is_delivered_from_another_one()
    {
        await using var cluster = await HomeserverTestCluster.StartAsync(3, new Dictionary<string, string?>
        {
            ["Homeserver:Push:AllowedNetworks:0"] = "127.0.0.0/8",
        });
        await using var gateway = await TestPushGateway.StartAsync();
        var alice = await MatrixTestClient.RegisterAsync(cluster.Silos[0]);
        var bob = await MatrixTestClient.RegisterAsync(cluster.Silos[0]);
        var roomId = await bob.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        await alice.JoinAsync(roomId);
        (await alice.PostAsync($"{MatrixPaths.V3}/pushers/set", new JsonObject
        {
            ["kind"] = "http", ["app_id"] = "org.example.app", ["pushkey"] = "survivor", ["app_display_name"] = "Example",
            ["device_display_name"] = "Phone", ["lang"] = "en", ["data"] = new JsonObject { ["url"] = gateway.Url },
        })).EnsureSuccess();

        // The gateway is down: the push is tried, fails, and waits for its retry on the silo that runs the pusher.
        gateway.FailNext(1_000);
        await bob.SendTextAsync(roomId, "pending");
        var management = cluster.Silos[0].Grains.GetGrain<IManagementGrain>(0);
        var pusher = cluster.Silos[0].Grains.GetGrain<IPushersGrain>(alice.UserId);
        SiloAddress? host = null;
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (host is null && DateTime.UtcNow < deadline)
        {
            host = await management.GetActivationAddress(pusher);
            if (host is null) await Task.Delay(50);
        }
        Assert.NotNull(host);
        var victim = cluster.Silos.Single(s => s.Get<ILocalSiloDetails>().SiloAddress.Equals(host));
        await cluster.KillSiloAsync(victim.Index);

        // The gateway is back; the next message wakes the pusher on a survivor, which starts from what was acknowledged.
        gateway.FailNext(0);
        var survivor = cluster.Silos.First(s => s.Running);
        var bobOnSurvivor = bob.On(survivor);
        var received = new List<string>();
        deadline = DateTime.UtcNow.AddSeconds(60);
        for (var attempt = 0; !received.Contains("pending") && DateTime.UtcNow < deadline; attempt++)
        {
            try { await bobOnSurvivor.SendTextAsync(roomId, $"after {attempt}"); }
            catch (Exception) { await Task.Delay(500); continue; } // the room's writer may still be moving
            foreach (var body in await gateway.DrainAsync(TimeSpan.FromSeconds(2)))
                if (body["notification"]?["content"]?["body"]?.GetValue<string>() is { } text) received.Add(text);
        }
        Assert.Contains("pending", received);
        Assert.Contains("after 0", received);
        // At most what was in flight comes twice.
        Assert.True(received.Count(t => t == "pending") <= 2, string.Join(", ", received));
        Assert.Equal(received.Distinct().Count(), received.Count(t => t != "pending") + (received.Contains("pending") ? 1 : 0));
    }
}

using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.Sync;

/// <summary>The per-silo shortcuts /sync takes (a to-device queue known empty, cached one-time key counts) must
/// never hide a change made through another silo.</summary>
public sealed class SyncCacheTests(SyncTests.Fixture fixture) : IClassFixture<SyncTests.Fixture>
{
    private const string V3 = "/_matrix/client/v3";
    private HomeserverTestCluster Cluster => fixture.Cluster;

    [Fact]
    public async Task A_device_known_to_have_an_empty_queue_still_gets_a_message_sent_through_the_other_silo()
    {
        var alice = await MatrixTestClient.RegisterAsync(Cluster.Silos[1]);
        var bob = await MatrixTestClient.RegisterAsync(Cluster.Silos[0]);
        var since = (await alice.GetAsync($"{V3}/sync")).EnsureSuccess()["next_batch"].GetValue<string>();
        for (var round = 0; round < 3; round++)
        {
            // An empty incremental sync marks the queue empty on silo 1.
            since = (await alice.GetAsync($"{V3}/sync?timeout=0&since={since}")).EnsureSuccess()["next_batch"].GetValue<string>();
            var body = new JsonObject { ["messages"] = new JsonObject { [alice.UserId] = new JsonObject { [alice.DeviceId] = new JsonObject { ["round"] = round } } } };
            (await bob.PutAsync($"{V3}/sendToDevice/org.example.test/txn{round}", body)).EnsureSuccess();
            var sync = (await alice.GetAsync($"{V3}/sync?timeout=10000&since={since}")).EnsureSuccess();
            var events = sync["to_device"]["events"]!.AsArray();
            Assert.Contains(events, e => e!["content"]!["round"]!.GetValue<int>() == round);
            since = sync["next_batch"].GetValue<string>();
        }
    }

    [Fact]
    public async Task One_time_key_counts_follow_uploads_and_claims_made_through_either_silo()
    {
        var alice = await MatrixTestClient.RegisterAsync(Cluster.Silos[1]);
        var bob = await MatrixTestClient.RegisterAsync(Cluster.Silos[0]);
        var keys = new JsonObject();
        for (var i = 0; i < 3; i++) keys[$"signed_curve25519:K{i}"] = new JsonObject { ["key"] = $"key{i}", ["signatures"] = new JsonObject() };
        var initial = (await alice.GetAsync($"{V3}/sync")).EnsureSuccess();
        Assert.Equal(0, initial["device_one_time_keys_count"]["signed_curve25519"]!.GetValue<int>());

        (await alice.On(Cluster.Silos[0]).PostAsync($"{V3}/keys/upload", new JsonObject { ["one_time_keys"] = keys })).EnsureSuccess();
        var afterUpload = (await alice.GetAsync($"{V3}/sync?timeout=0&since={initial["next_batch"].GetValue<string>()}")).EnsureSuccess();
        Assert.Equal(3, afterUpload["device_one_time_keys_count"]["signed_curve25519"]!.GetValue<int>());

        (await bob.PostAsync($"{V3}/keys/claim", new JsonObject
        {
            ["one_time_keys"] = new JsonObject { [alice.UserId] = new JsonObject { [alice.DeviceId] = "signed_curve25519" } },
        })).EnsureSuccess();
        var afterClaim = (await alice.GetAsync($"{V3}/sync?timeout=0&since={afterUpload["next_batch"].GetValue<string>()}")).EnsureSuccess();
        Assert.Equal(2, afterClaim["device_one_time_keys_count"]["signed_curve25519"]!.GetValue<int>());
    }
}

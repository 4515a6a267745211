using System.Text.Json.Nodes;
using Homeserver.Keys;
using Homeserver.Matrix;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Http.Keys.Api;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.Keys;

/// <summary>/keys/upload, /query, /claim and /changes over two silos: uploads through one, reads through the other.</summary>
[Collection(KeysCollection.Name)]
public sealed class KeysTests(KeysCluster fx)
{
    internal static JsonObject DeviceKeys(MatrixTestClient c, out byte[] privateKey, string? deviceId = null)
    {
        var device = deviceId ?? c.DeviceId;
        var (priv, pub) = SignedJson.NewKeyPair();
        var keys = new JsonObject
        {
            ["user_id"] = c.UserId,
            ["device_id"] = device,
            ["algorithms"] = new JsonArray("m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"),
            ["keys"] = new JsonObject { [$"ed25519:{device}"] = pub, [$"curve25519:{device}"] = $"curve-{Guid.NewGuid():N}" },
        };
        SignedJson.Sign(keys, c.UserId, $"ed25519:{device}", priv);
        privateKey = priv;
        return keys;
    }

    private static JsonObject OneTimeKeys(string prefix, int count)
    {
        var keys = new JsonObject();
        for (var i = 0; i < count; i++)
            keys[$"signed_curve25519:{prefix}{i}"] = new JsonObject
            {
                ["key"] = $"otk-{prefix}{i}",
                ["signatures"] = new JsonObject { ["@x:localhost"] = new JsonObject { ["ed25519:X"] = "sig" } },
            };
        return keys;
    }

    [Fact]
    public async Task Uploaded_keys_are_queried_from_the_other_silo_with_the_device_name_and_counts()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        (await alice.PutAsync($"{V3}/devices/{alice.DeviceId}", new JsonObject { ["display_name"] = "Alice's phone" })).EnsureSuccess();
        var keys = DeviceKeys(alice, out _);
        var upload = (await alice.PostAsync($"{V3}/keys/upload", new JsonObject
        {
            ["device_keys"] = keys.DeepClone(),
            ["one_time_keys"] = OneTimeKeys("a", 3),
            ["fallback_keys"] = new JsonObject { ["signed_curve25519:fb1"] = new JsonObject { ["key"] = "fallback", ["fallback"] = true, ["signatures"] = new JsonObject() } },
        })).EnsureSuccess();
        Assert.Equal(3, upload["one_time_key_counts"]["signed_curve25519"]!.GetValue<int>());

        var query = (await bob.On(fx.B).PostAsync($"{V3}/keys/query", new JsonObject
        {
            ["device_keys"] = new JsonObject { [alice.UserId] = new JsonArray(), ["@nobody:localhost"] = new JsonArray() },
        })).EnsureSuccess();
        var served = query["device_keys"][alice.UserId]![alice.DeviceId]!.AsObject();
        Assert.Equal(CanonicalJson.Encode(keys["keys"]), CanonicalJson.Encode(served["keys"]));
        Assert.Equal(CanonicalJson.Encode(keys["signatures"]), CanonicalJson.Encode(served["signatures"]));
        Assert.Equal("Alice's phone", served["unsigned"]!["device_display_name"]!.GetValue<string>());
        Assert.Empty(query["device_keys"]["@nobody:localhost"]!.AsObject());

        // Asking for a device that isn't there returns none of the user's devices.
        var narrowed = (await bob.PostAsync($"{V3}/keys/query", new JsonObject
        {
            ["device_keys"] = new JsonObject { [alice.UserId] = new JsonArray("OTHER") },
        })).EnsureSuccess();
        Assert.Empty(narrowed["device_keys"][alice.UserId]!.AsObject());

        // Re-uploading the same one-time key is idempotent; the same id with other content is refused.
        var again = (await alice.On(fx.B).PostAsync($"{V3}/keys/upload", new JsonObject { ["one_time_keys"] = OneTimeKeys("a", 3) })).EnsureSuccess();
        Assert.Equal(3, again["one_time_key_counts"]["signed_curve25519"]!.GetValue<int>());
        var clash = OneTimeKeys("a", 1);
        clash["signed_curve25519:a0"]!["key"] = "different";
        AssertError(await alice.PostAsync($"{V3}/keys/upload", new JsonObject { ["one_time_keys"] = clash }), 400, "M_UNKNOWN");
    }

    [Fact]
    public async Task A_device_without_a_name_is_served_with_an_empty_unsigned_object()
    {
        var carol = await fx.UserAsync("carol");
        (await carol.PostAsync($"{V3}/keys/upload", new JsonObject { ["device_keys"] = DeviceKeys(carol, out _) })).EnsureSuccess();
        var query = (await carol.PostAsync($"{V3}/keys/query", new JsonObject
        {
            ["device_keys"] = new JsonObject { [carol.UserId] = new JsonArray() },
        })).EnsureSuccess();
        var unsigned = query["device_keys"][carol.UserId]![carol.DeviceId]!["unsigned"]!.AsObject();
        Assert.False(unsigned.ContainsKey("device_display_name"));
    }

    [Fact]
    public async Task Invalid_uploads_and_queries_are_client_errors()
    {
        var alice = await fx.UserAsync("alice");
        var other = DeviceKeys(alice, out _);
        other["user_id"] = "@someone:localhost";
        AssertError(await alice.PostAsync($"{V3}/keys/upload", new JsonObject { ["device_keys"] = other }), 400, "M_BAD_JSON");
        AssertError(await alice.PostAsync($"{V3}/keys/upload", new JsonObject { ["device_keys"] = DeviceKeys(alice, out _, "NOTMINE") }), 400, "M_BAD_JSON");
        var noSignatures = DeviceKeys(alice, out _);
        noSignatures.Remove("signatures");
        AssertError(await alice.PostAsync($"{V3}/keys/upload", new JsonObject { ["device_keys"] = noSignatures }), 400, "M_BAD_JSON");
        AssertError(await alice.PostAsync($"{V3}/keys/upload", new JsonObject { ["device_keys"] = null }), 400, "M_BAD_JSON");
        AssertError(await alice.PostAsync($"{V3}/keys/upload", new JsonObject { ["one_time_keys"] = new JsonObject { ["nocolon"] = "k" } }), 400, "M_BAD_JSON");
        AssertError(await alice.PostAsync($"{V3}/keys/upload", new JsonObject { ["one_time_keys"] = new JsonObject { ["a:b"] = 5 } }), 400, "M_BAD_JSON");
        AssertError(await alice.PostAsync($"{V3}/keys/upload", "not json"), 400, "M_NOT_JSON");
        AssertError(await fx.A.Http.PostJsonAsync($"{V3}/keys/upload", new JsonObject()), 401, "M_MISSING_TOKEN");
        AssertError(await alice.PostAsync($"{V3}/keys/query", new JsonObject()), 400, "M_BAD_JSON");
        AssertError(await alice.PostAsync($"{V3}/keys/query", new JsonObject { ["device_keys"] = new JsonObject { [alice.UserId] = "x" } }), 400, "M_BAD_JSON");
        AssertError(await alice.PostAsync($"{V3}/keys/claim", new JsonObject()), 400, "M_BAD_JSON");
        AssertError(await alice.GetAsync($"{V3}/keys/changes"), 400, "M_MISSING_PARAM");
        AssertError(await alice.GetAsync($"{V3}/keys/changes?from=garbage"), 400, "M_INVALID_PARAM");
    }

    [Fact]
    public async Task Claims_take_one_time_keys_then_the_fallback_key_which_sync_reports_used()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        (await alice.PostAsync($"{V3}/keys/upload", new JsonObject
        {
            ["one_time_keys"] = OneTimeKeys("k", 2),
            ["fallback_keys"] = new JsonObject { ["signed_curve25519:fb"] = new JsonObject { ["key"] = "fallback", ["fallback"] = true, ["signatures"] = new JsonObject() } },
        })).EnsureSuccess();
        var sync = (await alice.On(fx.B).GetAsync($"{V3}/sync?timeout=0")).EnsureSuccess();
        Assert.Equal(2, sync["device_one_time_keys_count"]["signed_curve25519"]!.GetValue<int>());
        Assert.Equal(["signed_curve25519"], Strings(sync["device_unused_fallback_key_types"]));

        var claimed = new HashSet<string>();
        for (var i = 0; i < 3; i++)
        {
            var claim = (await bob.On(i % 2 == 0 ? fx.A : fx.B).PostAsync($"{V3}/keys/claim", new JsonObject
            {
                ["one_time_keys"] = new JsonObject { [alice.UserId] = new JsonObject { [alice.DeviceId] = "signed_curve25519", ["NODEVICE"] = "signed_curve25519" } },
            })).EnsureSuccess();
            var keys = claim["one_time_keys"][alice.UserId]!.AsObject();
            Assert.Null(keys["NODEVICE"]);
            claimed.Add(Assert.Single(keys[alice.DeviceId]!.AsObject()).Key);
        }
        Assert.Equal(new HashSet<string> { "signed_curve25519:k0", "signed_curve25519:k1", "signed_curve25519:fb" }, claimed);

        sync = (await alice.GetAsync($"{V3}/sync?timeout=0")).EnsureSuccess();
        Assert.Equal(0, sync["device_one_time_keys_count"]["signed_curve25519"]!.GetValue<int>());
        Assert.Empty(Strings(sync["device_unused_fallback_key_types"]));

        // The fallback key stays available after being used.
        var again = (await bob.PostAsync($"{V3}/keys/claim", new JsonObject
        {
            ["one_time_keys"] = new JsonObject { [alice.UserId] = new JsonObject { [alice.DeviceId] = "signed_curve25519" } },
        })).EnsureSuccess();
        Assert.Equal("signed_curve25519:fb", Assert.Single(again["one_time_keys"][alice.UserId]![alice.DeviceId]!.AsObject()).Key);
    }

    [Fact]
    public async Task Key_changes_name_room_mates_only_and_left_users()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        var carol = await fx.UserAsync("carol");
        var roomId = await SharedRoomAsync(alice, bob);
        var from = await alice.SyncTokenAsync();
        var carolFrom = await carol.SyncTokenAsync();

        (await bob.On(fx.B).PostAsync($"{V3}/keys/upload", new JsonObject { ["device_keys"] = DeviceKeys(bob, out _) })).EnsureSuccess();
        var changes = (await alice.On(fx.B).GetAsync($"{V3}/keys/changes?from={from}")).EnsureSuccess();
        Assert.Contains(bob.UserId, Strings(changes["changed"]));
        Assert.DoesNotContain(bob.UserId, Strings((await carol.GetAsync($"{V3}/keys/changes?from={carolFrom}")).EnsureSuccess()["changed"]));

        var to = await alice.SyncTokenAsync();
        Assert.Empty(Strings((await alice.GetAsync($"{V3}/keys/changes?from={to}&to={to}")).EnsureSuccess()["changed"]));
        (await bob.PostAsync($"{Room(roomId)}/leave")).EnsureSuccess();
        var left = (await alice.GetAsync($"{V3}/keys/changes?from={to}")).EnsureSuccess();
        Assert.Contains(bob.UserId, Strings(left["left"]));
        Assert.DoesNotContain(bob.UserId, Strings(left["changed"]));
    }

    [Fact]
    public async Task Sync_reports_device_list_changes_for_new_and_deleted_devices_and_left_users()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        var roomId = await SharedRoomAsync(alice, bob);
        var since = await alice.SyncTokenAsync();

        // A new device (login) through silo B shows up in alice's sync on silo A.
        var phone = await MatrixTestClient.LoginAsync(fx.B, bob.UserId, deviceId: "PHONE");
        var sync = (await alice.GetAsync($"{V3}/sync?timeout=10000&since={since}")).EnsureSuccess();
        Assert.Contains(bob.UserId, Strings(sync["device_lists"]["changed"]));
        since = sync["next_batch"].GetValue<string>();

        // Renaming a device changes what /keys/query shows of it: announced too.
        (await bob.PutAsync($"{V3}/devices/{bob.DeviceId}", new JsonObject { ["display_name"] = "renamed" })).EnsureSuccess();
        sync = (await alice.On(fx.B).GetAsync($"{V3}/sync?timeout=10000&since={since}")).EnsureSuccess();
        Assert.Contains(bob.UserId, Strings(sync["device_lists"]["changed"]));
        since = sync["next_batch"].GetValue<string>();

        // Its keys go when it is deleted, and the deletion is announced too.
        (await phone.PostAsync($"{V3}/keys/upload", new JsonObject { ["device_keys"] = DeviceKeys(phone, out _) })).EnsureSuccess();
        sync = (await alice.GetAsync($"{V3}/sync?timeout=10000&since={since}")).EnsureSuccess();
        Assert.Contains(bob.UserId, Strings(sync["device_lists"]["changed"]));
        since = sync["next_batch"].GetValue<string>();
        var challenge = await bob.DeleteAsync($"{V3}/devices/PHONE");
        (await bob.DeleteAsync($"{V3}/devices/PHONE", new JsonObject
        {
            ["auth"] = new JsonObject
            {
                ["type"] = "m.login.password", ["session"] = challenge["session"].GetValue<string>(),
                ["identifier"] = new JsonObject { ["type"] = "m.id.user", ["user"] = bob.UserId }, ["password"] = bob.Password,
            },
        })).EnsureSuccess();
        sync = (await alice.On(fx.B).GetAsync($"{V3}/sync?timeout=10000&since={since}")).EnsureSuccess();
        Assert.Contains(bob.UserId, Strings(sync["device_lists"]["changed"]));
        since = sync["next_batch"].GetValue<string>();
        var query = (await alice.PostAsync($"{V3}/keys/query", new JsonObject { ["device_keys"] = new JsonObject { [bob.UserId] = new JsonArray() } })).EnsureSuccess();
        Assert.Null(query["device_keys"][bob.UserId]!["PHONE"]);

        (await bob.PostAsync($"{Room(roomId)}/leave")).EnsureSuccess();
        sync = (await alice.GetAsync($"{V3}/sync?timeout=10000&since={since}")).EnsureSuccess();
        Assert.Contains(bob.UserId, Strings(sync["device_lists"]["left"]));
    }

    [Fact]
    public async Task A_key_upload_through_silo_0_wakes_a_room_mates_long_poll_on_silo_1()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        await SharedRoomAsync(alice, bob);
        var onB = alice.On(fx.B);
        var since = await onB.SyncTokenAsync();

        var poll = onB.GetAsync($"{V3}/sync?timeout=30000&since={since}");
        await Task.Delay(300);
        Assert.False(poll.IsCompleted, "the long-poll returned before anything changed");
        var started = System.Diagnostics.Stopwatch.StartNew();
        (await bob.PostAsync($"{V3}/keys/upload", new JsonObject { ["device_keys"] = DeviceKeys(bob, out _) })).EnsureSuccess();
        var sync = (await poll).EnsureSuccess();
        Assert.True(started.Elapsed < TimeSpan.FromSeconds(10), $"woken after {started.Elapsed}");
        Assert.Contains(bob.UserId, Strings(sync["device_lists"]["changed"]));
    }
}

using System.Text.Json.Nodes;
using Homeserver.Keys;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Http.Keys.Api;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.Keys;

/// <summary>/keys/device_signing/upload (with UIA once a master key exists) and /keys/signatures/upload.</summary>
[Collection(KeysCollection.Name)]
public sealed class CrossSigningTests(KeysCluster fx)
{
    private sealed record Key(JsonObject Json, byte[] Private, string Public)
    {
        public string Id => $"ed25519:{Public}";
    }

    private static Key NewKey(string userId, string usage, Key? signer = null)
    {
        var (priv, pub) = SignedJson.NewKeyPair();
        var json = new JsonObject
        {
            ["user_id"] = userId,
            ["usage"] = new JsonArray(usage),
            ["keys"] = new JsonObject { [$"ed25519:{pub}"] = pub },
        };
        if (signer is not null) SignedJson.Sign(json, userId, signer.Id, signer.Private);
        return new Key(json, priv, pub);
    }

    private static JsonObject Upload(Key? master, Key? selfSigning, Key? userSigning, JsonObject? auth = null)
    {
        var body = new JsonObject();
        if (master is not null) body["master_key"] = master.Json.DeepClone();
        if (selfSigning is not null) body["self_signing_key"] = selfSigning.Json.DeepClone();
        if (userSigning is not null) body["user_signing_key"] = userSigning.Json.DeepClone();
        if (auth is not null) body["auth"] = auth;
        return body;
    }

    private static JsonObject PasswordAuth(MatrixTestClient c, string? session, string? password = null)
    {
        var auth = new JsonObject
        {
            ["type"] = "m.login.password",
            ["identifier"] = new JsonObject { ["type"] = "m.id.user", ["user"] = c.UserId },
            ["password"] = password ?? c.Password,
        };
        if (session is not null) auth["session"] = session;
        return auth;
    }

    private static async Task<(Key Master, Key SelfSigning, Key UserSigning)> SetUpAsync(MatrixTestClient c)
    {
        var master = NewKey(c.UserId, "master");
        var ssk = NewKey(c.UserId, "self_signing", master);
        var usk = NewKey(c.UserId, "user_signing", master);
        (await c.PostAsync($"{V3}/keys/device_signing/upload", Upload(master, ssk, usk))).EnsureSuccess();
        return (master, ssk, usk);
    }

    [Fact]
    public async Task First_upload_needs_no_auth_and_a_replacement_needs_the_password()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        var (master, ssk, usk) = await SetUpAsync(alice);

        var mine = (await alice.On(fx.B).PostAsync($"{V3}/keys/query", new JsonObject { ["device_keys"] = new JsonObject { [alice.UserId] = new JsonArray() } })).EnsureSuccess();
        Assert.Equal(master.Public, mine["master_keys"][alice.UserId]!["keys"]![master.Id]!.GetValue<string>());
        Assert.Equal(ssk.Public, mine["self_signing_keys"][alice.UserId]!["keys"]![ssk.Id]!.GetValue<string>());
        Assert.Equal(usk.Public, mine["user_signing_keys"][alice.UserId]!["keys"]![usk.Id]!.GetValue<string>());
        var theirs = (await bob.PostAsync($"{V3}/keys/query", new JsonObject { ["device_keys"] = new JsonObject { [alice.UserId] = new JsonArray() } })).EnsureSuccess();
        Assert.NotNull(theirs["master_keys"][alice.UserId]);
        Assert.Null(theirs["user_signing_keys"][alice.UserId]);

        // Repeating the stored keys is fine without auth.
        (await alice.PostAsync($"{V3}/keys/device_signing/upload", Upload(master, ssk, usk))).EnsureSuccess();

        var master2 = NewKey(alice.UserId, "master");
        var ssk2 = NewKey(alice.UserId, "self_signing", master2);
        var challenge = await alice.PostAsync($"{V3}/keys/device_signing/upload", Upload(master2, ssk2, null));
        Assert.Equal(401, challenge.StatusCode);
        Assert.Equal("m.login.password", challenge["flows"][0]!["stages"]![0]!.GetValue<string>());
        var session = challenge["session"].GetValue<string>();
        var wrong = await alice.PostAsync($"{V3}/keys/device_signing/upload", Upload(master2, ssk2, null, PasswordAuth(alice, session, "wrong")));
        AssertError(wrong, 401, "M_FORBIDDEN");
        (await alice.On(fx.B).PostAsync($"{V3}/keys/device_signing/upload", Upload(master2, ssk2, null, PasswordAuth(alice, session)))).EnsureSuccess();

        var after = (await bob.On(fx.B).PostAsync($"{V3}/keys/query", new JsonObject { ["device_keys"] = new JsonObject { [alice.UserId] = new JsonArray() } })).EnsureSuccess();
        Assert.Equal(master2.Public, after["master_keys"][alice.UserId]!["keys"]![master2.Id]!.GetValue<string>());
    }

    [Fact]
    public async Task Invalid_signing_keys_are_refused()
    {
        var alice = await fx.UserAsync("alice");
        var master = NewKey(alice.UserId, "master");
        var unsigned = NewKey(alice.UserId, "self_signing");
        var otherMaster = NewKey(alice.UserId, "master");
        var wronglySigned = NewKey(alice.UserId, "self_signing", otherMaster);
        AssertError(await alice.PostAsync($"{V3}/keys/device_signing/upload", Upload(null, wronglySigned, null)), 400, "M_MISSING_PARAM");
        AssertError(await alice.PostAsync($"{V3}/keys/device_signing/upload", Upload(master, unsigned, null)), 400, "M_INVALID_SIGNATURE");
        AssertError(await alice.PostAsync($"{V3}/keys/device_signing/upload", Upload(master, wronglySigned, null)), 400, "M_INVALID_SIGNATURE");
        AssertError(await alice.PostAsync($"{V3}/keys/device_signing/upload", Upload(NewKey("@else:localhost", "master"), null, null)), 400, "M_INVALID_PARAM");
        AssertError(await alice.PostAsync($"{V3}/keys/device_signing/upload", Upload(NewKey(alice.UserId, "self_signing"), null, null)), 400, "M_INVALID_PARAM");
        AssertError(await alice.PostAsync($"{V3}/keys/device_signing/upload", new JsonObject { ["master_key"] = "x" }), 400, "M_BAD_JSON");
        // Nothing was stored by the failures: a first upload still needs no auth.
        (await alice.PostAsync($"{V3}/keys/device_signing/upload", Upload(master, NewKey(alice.UserId, "self_signing", master), null))).EnsureSuccess();
    }

    [Fact]
    public async Task A_new_user_signing_key_is_announced_to_its_owner_only()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        await SharedRoomAsync(alice, bob);
        var master = NewKey(alice.UserId, "master");
        (await alice.PostAsync($"{V3}/keys/device_signing/upload", Upload(master, NewKey(alice.UserId, "self_signing", master), null))).EnsureSuccess();
        var (bobSince, aliceSince) = (await bob.SyncTokenAsync(), await alice.SyncTokenAsync());

        var challenge = await alice.PostAsync($"{V3}/keys/device_signing/upload", Upload(null, null, NewKey(alice.UserId, "user_signing", master)));
        (await alice.PostAsync($"{V3}/keys/device_signing/upload", Upload(null, null, NewKey(alice.UserId, "user_signing", master),
            PasswordAuth(alice, challenge["session"].GetValue<string>())))).EnsureSuccess();
        var own = (await alice.On(fx.B).GetAsync($"{V3}/sync?timeout=10000&since={aliceSince}")).EnsureSuccess();
        Assert.Contains(alice.UserId, Strings(own["device_lists"]["changed"]));
        var theirs = (await bob.On(fx.B).GetAsync($"{V3}/sync?timeout=1000&since={bobSince}")).EnsureSuccess();
        Assert.DoesNotContain(alice.UserId, Strings(theirs.Body?["device_lists"]?["changed"]));
    }

    [Fact]
    public async Task Signatures_are_verified_stored_and_served_in_queries()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        var device = KeysTests.DeviceKeys(alice, out _);
        (await alice.PostAsync($"{V3}/keys/upload", new JsonObject { ["device_keys"] = device.DeepClone() })).EnsureSuccess();
        var (_, ssk, _) = await SetUpAsync(alice);
        var (bobMaster, _, bobUsk) = await SetUpAsync(bob);
        var from = await bob.SyncTokenAsync();

        var signedDevice = (JsonObject)device.DeepClone();
        SignedJson.Sign(signedDevice, alice.UserId, ssk.Id, ssk.Private);
        var forged = (JsonObject)device.DeepClone();
        forged["signatures"]![alice.UserId]![ssk.Id] = SignedJson.EncodeBase64(new byte[64]);
        var aliceMaster = (await bob.PostAsync($"{V3}/keys/query", new JsonObject { ["device_keys"] = new JsonObject { [alice.UserId] = new JsonArray() } }))
            .EnsureSuccess()["master_keys"][alice.UserId]!.AsObject();
        var aliceMasterId = aliceMaster["keys"]!.AsObject().Single().Key;

        var own = (await alice.PostAsync($"{V3}/keys/signatures/upload", new JsonObject
        {
            [alice.UserId] = new JsonObject { [alice.DeviceId] = signedDevice },
        })).EnsureSuccess();
        Assert.Empty(own["failures"].AsObject());
        var bad = (await alice.PostAsync($"{V3}/keys/signatures/upload", new JsonObject
        {
            [alice.UserId] = new JsonObject { [alice.DeviceId] = forged, ["NODEVICE"] = (JsonObject)signedDevice.DeepClone() },
        })).EnsureSuccess();
        Assert.Equal("M_INVALID_SIGNATURE", bad["failures"][alice.UserId]![alice.DeviceId]!["errcode"]!.GetValue<string>());
        Assert.Equal("M_NOT_FOUND", bad["failures"][alice.UserId]!["NODEVICE"]!["errcode"]!.GetValue<string>());

        // Bob signs alice's master key with his user-signing key: only bob sees that signature.
        var signedMaster = (JsonObject)aliceMaster.DeepClone();
        SignedJson.Sign(signedMaster, bob.UserId, bobUsk.Id, bobUsk.Private);
        var other = (await bob.On(fx.B).PostAsync($"{V3}/keys/signatures/upload", new JsonObject
        {
            [alice.UserId] = new JsonObject { [aliceMasterId["ed25519:".Length..]] = signedMaster },
        })).EnsureSuccess();
        Assert.Empty(other["failures"].AsObject());

        var byBob = (await bob.PostAsync($"{V3}/keys/query", new JsonObject { ["device_keys"] = new JsonObject { [alice.UserId] = new JsonArray() } })).EnsureSuccess();
        Assert.NotNull(byBob["device_keys"][alice.UserId]![alice.DeviceId]!["signatures"]![alice.UserId]![ssk.Id]);
        Assert.NotNull(byBob["master_keys"][alice.UserId]!["signatures"]![bob.UserId]![bobUsk.Id]);
        var byAlice = (await alice.On(fx.B).PostAsync($"{V3}/keys/query", new JsonObject { ["device_keys"] = new JsonObject { [alice.UserId] = new JsonArray() } })).EnsureSuccess();
        Assert.Null(byAlice["master_keys"][alice.UserId]!["signatures"]?[bob.UserId]);

        // Bob (the signer) is told alice's keys changed even without a shared room.
        Assert.Contains(alice.UserId, Strings((await bob.GetAsync($"{V3}/keys/changes?from={from}")).EnsureSuccess()["changed"]));
        Assert.NotNull(bobMaster);
    }
}

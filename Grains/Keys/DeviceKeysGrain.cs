using System.Text.Json.Nodes;
using Homeserver.Errors;
using Homeserver.Matrix;
using Homeserver.Streams;

namespace Homeserver.Keys;

/// <summary>
/// One user's keys (see <see cref="IDeviceKeysGrain"/>). Reads straight from the database, which the persisters keep
/// current in the same transaction as each <c>device_lists</c> row; calls are serialised per user, so a check and the
/// write that follows it cannot interleave with another upload of the same user.
/// </summary>
public sealed class DeviceKeysGrain(KeyRepository keys, KeyCountCache keyCounts) : Grain, IDeviceKeysGrain
{
    private static readonly string[] CrossSigningTypes = ["master", "self_signing", "user_signing"];

    private string UserId => this.GetPrimaryKeyString();

    public async Task<KeyUploadResult> UploadAsync(KeyUpload upload)
    {
        long position = 0;
        if (upload.DeviceKeysJson is { } deviceKeysJson)
        {
            var canonical = CanonicalJson.Encode(JsonNode.Parse(deviceKeysJson));
            var stored = (await keys.GetDeviceKeysAsync([UserId])).FirstOrDefault(k => k.DeviceId == upload.DeviceId);
            // Only a real change is announced: clients re-upload the same keys routinely.
            if (stored?.KeyJson != canonical)
                position = await AppendAsync(new DeviceListChange(UserId, [UserId],
                    DeviceKeys: new Dictionary<string, string> { [upload.DeviceId] = canonical }));
        }

        var oneTime = Split(upload.OneTimeKeysJson);
        if (oneTime.Count > 0)
        {
            var existing = await keys.GetOneTimeKeysAsync(UserId, upload.DeviceId, oneTime.Select(k => (k.Algorithm, k.KeyId)).ToList());
            foreach (var (algorithm, keyId, json) in oneTime)
                if (existing.TryGetValue((algorithm, keyId), out var old) && !SameKey(old, json))
                    throw new MatrixException(ErrorCodes.Unknown, $"One time key {algorithm}:{keyId} already exists", 400);
        }
        var fallback = Split(upload.FallbackKeysJson);
        await keys.StoreKeysAsync(UserId, upload.DeviceId, oneTime, fallback);
        // Every silo's /sync of this device must show the new counts (its barrier waits for this invalidation).
        if (oneTime.Count > 0 || fallback.Count > 0) await keyCounts.InvalidateAsync(UserId, [upload.DeviceId]);

        var counts = await keys.CountOneTimeKeysAsync(UserId, upload.DeviceId);
        return new KeyUploadResult(CountsJson(counts), position);
    }

    public async Task<string> ClaimAsync(KeyClaim[] claims)
    {
        var result = new JsonObject();
        var claimed = new List<string>();
        foreach (var claim in claims)
        {
            if (await keys.ClaimAsync(UserId, claim.DeviceId, claim.Algorithm) is not { } key) continue;
            claimed.Add(claim.DeviceId);
            if (result[claim.DeviceId] is not JsonObject device) result[claim.DeviceId] = device = new JsonObject();
            device[$"{claim.Algorithm}:{key.KeyId}"] = JsonNode.Parse(key.Json);
        }
        if (claimed.Count > 0) await keyCounts.InvalidateAsync(UserId, claimed);
        return result.ToJsonString();
    }

    public async Task<SigningKeysUpload> CheckSigningKeysUploadAsync(string keysJson)
    {
        var body = CanonicalJson.ParseObject(keysJson);
        var stored = (await keys.GetCrossSigningKeysAsync([UserId])).ToDictionary(k => k.KeyType, k => k.KeyJson);
        var changed = CrossSigningTypes.Any(type =>
            body[$"{type}_key"] is JsonObject key
            && (!stored.TryGetValue(type, out var old) || old != CanonicalJson.Encode(key)));
        if (!changed) return SigningKeysUpload.Unchanged;
        return stored.ContainsKey("master") ? SigningKeysUpload.NeedsAuth : SigningKeysUpload.NoAuthNeeded;
    }

    public async Task<long> UploadSigningKeysAsync(string keysJson)
    {
        var body = CanonicalJson.ParseObject(keysJson);
        var stored = (await keys.GetCrossSigningKeysAsync([UserId])).ToDictionary(k => k.KeyType, k => k.KeyJson);
        JsonObject? master = body["master_key"] as JsonObject
            ?? (stored.TryGetValue("master", out var storedMaster) ? CanonicalJson.ParseObject(storedMaster) : null);
        if (master is null) throw MatrixException.MissingParam("No master key available");
        var (masterId, masterKey) = SignedJson.CrossSigningKey(master, UserId, "master");

        var updates = new Dictionary<string, string>();
        if (body["master_key"] is JsonObject) updates["master"] = CanonicalJson.Encode(master);
        foreach (var type in new[] { "self_signing", "user_signing" })
        {
            if (body[$"{type}_key"] is not JsonObject key) continue;
            SignedJson.CrossSigningKey(key, UserId, type);
            if (!SignedJson.Verify(key, UserId, masterId, masterKey))
                throw new MatrixException(SignedJson.InvalidSignature, $"The {type} key is not signed by the master key", 400);
            updates[type] = CanonicalJson.Encode(key);
        }
        if (updates.Count == 0) return 0;
        // A user-signing key is the user's own business (it signs whom they trust): as in Synapse, only a new master or
        // self-signing key tells those who share a room with the user.
        var onlyForUser = updates.Keys.All(type => type == "user_signing");
        return await AppendAsync(new DeviceListChange(UserId, [UserId], OnlyFor: onlyForUser ? UserId : null, CrossSigningKeys: updates));
    }

    public async Task<SignaturesUploadResult> UploadSignaturesAsync(string signaturesJson)
    {
        var body = CanonicalJson.ParseObject(signaturesJson);
        var failures = new JsonObject();
        void Fail(string user, string target, string errcode, string message) =>
            ((failures[user] ??= new JsonObject()).AsObject())[target] = new JsonObject { ["errcode"] = errcode, ["error"] = message };

        var crossSigning = (await keys.GetCrossSigningKeysAsync(body.Select(kv => kv.Key).Append(UserId).Distinct().ToList()))
            .ToDictionary(k => (k.UserId, k.KeyType), k => CanonicalJson.ParseObject(k.KeyJson));
        var devices = (await keys.GetDeviceKeysAsync([UserId])).ToDictionary(d => d.DeviceId, d => CanonicalJson.ParseObject(d.KeyJson));
        var own = new List<StoredSignature>();
        var others = new List<StoredSignature>();

        foreach (var (targetUser, targets) in body)
        {
            if (targets is not JsonObject targetMap) throw MatrixException.InvalidParam("Invalid signatures upload");
            foreach (var (targetId, node) in targetMap)
            {
                if (node is not JsonObject signed) throw MatrixException.InvalidParam("Invalid signatures upload");
                try
                {
                    if (targetUser == UserId) own.AddRange(CheckOwn(targetId, signed, crossSigning, devices));
                    else others.AddRange(CheckOther(targetUser, targetId, signed, crossSigning));
                }
                catch (MatrixException e)
                {
                    Fail(targetUser, targetId, e.ErrCode, e.Message);
                }
            }
        }

        long position = 0;
        if (own.Count > 0)
            position = await AppendAsync(new DeviceListChange(UserId, [UserId], Signatures: own.ToArray()));
        if (others.Count > 0)
            position = await AppendAsync(new DeviceListChange(UserId, others.Select(s => s.TargetUserId).Distinct().ToArray(),
                OnlyFor: UserId, Signatures: others.ToArray()));
        return new SignaturesUploadResult(new JsonObject { ["failures"] = failures }.ToJsonString(), position);
    }

    /// <summary>A signature of one of the user's own keys: a device signed by the self-signing key, or the master key
    /// signed by one of the user's devices.</summary>
    private List<StoredSignature> CheckOwn(string targetId, JsonObject signed,
        Dictionary<(string, string), JsonObject> crossSigning, Dictionary<string, JsonObject> devices)
    {
        if (SignaturesBy(signed, UserId) is not { } signatures)
            throw new MatrixException(SignedJson.InvalidSignature, "No signature", 400);
        if (crossSigning.TryGetValue((UserId, "master"), out var master)
            && SignedJson.CrossSigningKey(master, UserId, "master").PublicKey == targetId)
        {
            if (!SameKey(master, signed)) throw new MatrixException(SignedJson.InvalidSignature, "Key does not match", 400);
            var list = new List<StoredSignature>();
            foreach (var (keyId, value) in signatures)
            {
                if (!keyId.StartsWith("ed25519:", StringComparison.Ordinal)) continue;
                var deviceId = keyId["ed25519:".Length..];
                if (!devices.TryGetValue(deviceId, out var device) || device["keys"]?[keyId] is not JsonValue pub) continue;
                if (value is not JsonValue v || !v.TryGetValue<string>(out var signature) || !pub.TryGetValue<string>(out var publicKey))
                    throw new MatrixException(SignedJson.InvalidSignature, "Signatures must be strings", 400);
                if (!SignedJson.Verify(signed, UserId, keyId, publicKey))
                    throw new MatrixException(SignedJson.InvalidSignature, "Invalid signature", 400);
                list.Add(new StoredSignature(UserId, keyId, UserId, targetId, signature));
            }
            if (list.Count == 0) throw new MatrixException(SignedJson.InvalidSignature, "No signature by a known device", 400);
            return list;
        }

        if (!crossSigning.TryGetValue((UserId, "self_signing"), out var selfSigning))
            throw MatrixException.NotFound("No self-signing key");
        var (sskId, sskKey) = SignedJson.CrossSigningKey(selfSigning, UserId, "self_signing");
        if (!devices.TryGetValue(targetId, out var stored)) throw MatrixException.NotFound("Unknown device");
        if (signatures[sskId] is not JsonValue sig || !sig.TryGetValue<string>(out var sigText))
            throw new MatrixException(SignedJson.InvalidSignature, "Not signed by the self-signing key", 400);
        if (!SameKey(stored, signed)) throw new MatrixException(SignedJson.InvalidSignature, "Key does not match", 400);
        if (!SignedJson.Verify(signed, UserId, sskId, sskKey))
            throw new MatrixException(SignedJson.InvalidSignature, "Invalid signature", 400);
        return [new StoredSignature(UserId, sskId, UserId, targetId, sigText)];
    }

    /// <summary>Another user's master key signed by this user's user-signing key.</summary>
    private StoredSignature CheckOther(string targetUser, string targetId, JsonObject signed, Dictionary<(string, string), JsonObject> crossSigning)
    {
        if (!crossSigning.TryGetValue((UserId, "user_signing"), out var userSigning))
            throw MatrixException.NotFound("No user-signing key");
        var (uskId, uskKey) = SignedJson.CrossSigningKey(userSigning, UserId, "user_signing");
        if (!crossSigning.TryGetValue((targetUser, "master"), out var master)
            || SignedJson.CrossSigningKey(master, targetUser, "master").PublicKey != targetId)
            throw MatrixException.NotFound("Unknown master key");
        if (SignaturesBy(signed, UserId)?[uskId] is not JsonValue sig || !sig.TryGetValue<string>(out var sigText))
            throw new MatrixException(SignedJson.InvalidSignature, "Not signed by the user-signing key", 400);
        if (!SameKey(master, signed)) throw new MatrixException(SignedJson.InvalidSignature, "Key does not match", 400);
        if (!SignedJson.Verify(signed, UserId, uskId, uskKey))
            throw new MatrixException(SignedJson.InvalidSignature, "Invalid signature", 400);
        return new StoredSignature(UserId, uskId, targetUser, targetId, sigText);
    }

    public async Task<long> DevicesChangedAsync(string[] deviceIds, bool deleted)
    {
        if (deviceIds.Length == 0) return 0;
        return await AppendAsync(new DeviceListChange(UserId, [UserId], DeletedDevices: deleted ? deviceIds : null));
    }

    private async Task<long> AppendAsync(DeviceListChange change)
    {
        var rooms = await keys.GetJoinedRoomsAsync(UserId);
        var writer = GrainFactory.GetGrain<IStreamWriterGrain>(StreamNames.WriterKey(StreamNames.DeviceLists, DeviceListRows.Writer));
        return (await writer.AppendAsync(DeviceListRows.Rows(change, rooms))).LastPosition;
    }

    /// <summary>The signatures <paramref name="signer"/> made on a client's key object, or null when it has none or
    /// its <c>signatures</c> is not an object of objects (indexing a JSON array by name would throw).</summary>
    private static JsonObject? SignaturesBy(JsonObject signed, string signer) =>
        signed["signatures"] is JsonObject all && all[signer] is JsonObject mine ? mine : null;

    /// <summary>Two versions of a key object are the same key when they match without their signatures.</summary>
    private static bool SameKey(JsonObject a, JsonObject b) =>
        CanonicalJson.EncodeToUtf8Without(a, "signatures", "unsigned").AsSpan().SequenceEqual(CanonicalJson.EncodeToUtf8Without(b, "signatures", "unsigned"));

    private static bool SameKey(string storedJson, string json)
    {
        var a = JsonNode.Parse(storedJson);
        var b = JsonNode.Parse(json);
        if (a is JsonObject ao && b is JsonObject bo) return SameKey(ao, bo);
        return CanonicalJson.Encode(a) == CanonicalJson.Encode(b);
    }

    private static List<(string Algorithm, string KeyId, string Json)> Split(string? json)
    {
        var list = new List<(string, string, string)>();
        if (json is null) return list;
        foreach (var (id, key) in CanonicalJson.ParseObject(json))
        {
            var colon = id.IndexOf(':');
            list.Add((id[..colon], id[(colon + 1)..], CanonicalJson.Encode(key)));
        }
        return list;
    }

    internal static string CountsJson(IDictionary<string, long> counts)
    {
        var o = new JsonObject();
        foreach (var (algorithm, count) in counts) o[algorithm] = count;
        return o.ToJsonString();
    }
}

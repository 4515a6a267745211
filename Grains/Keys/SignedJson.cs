using System.Text.Json.Nodes;
using Homeserver.Errors;
using Homeserver.Matrix;
using Org.BouncyCastle.Math.EC.Rfc8032;

namespace Homeserver.Keys;

/// <summary>
/// Signed JSON (spec appendix "Signing JSON"): the canonical JSON of an object without <c>signatures</c> and
/// <c>unsigned</c>, signed with ed25519; keys and signatures in unpadded base64.
/// </summary>
public static class SignedJson
{
    public const string InvalidSignature = "M_INVALID_SIGNATURE";

    /// <summary>True when <paramref name="obj"/> carries a valid signature by <paramref name="signer"/>'s key
    /// <paramref name="keyId"/> (<c>ed25519:...</c>) whose public key is <paramref name="publicKey"/>.</summary>
    public static bool Verify(JsonObject obj, string signer, string keyId, string publicKey)
    {
        if (obj["signatures"] is not JsonObject all || all[signer] is not JsonObject mine
            || mine[keyId] is not JsonValue sv || !sv.TryGetValue<string>(out var signature)) return false;
        var key = DecodeBase64(publicKey);
        var sig = DecodeBase64(signature);
        if (key?.Length != Ed25519.PublicKeySize || sig?.Length != Ed25519.SignatureSize) return false;
        var message = CanonicalJson.EncodeToUtf8Without(obj, "signatures", "unsigned");
        try
        {
            return Ed25519.Verify(sig!, 0, key!, 0, message, 0, message.Length);
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    /// <summary>Adds a signature (tests and tools sign; the server only verifies).</summary>
    public static void Sign(JsonObject obj, string signer, string keyId, byte[] privateKey)
    {
        var message = CanonicalJson.EncodeToUtf8Without(obj, "signatures", "unsigned");
        var sig = new byte[Ed25519.SignatureSize];
        Ed25519.Sign(privateKey, 0, message, 0, message.Length, sig, 0);
        if (obj["signatures"] is not JsonObject signatures) obj["signatures"] = signatures = new JsonObject();
        if (signatures[signer] is not JsonObject mine) signatures[signer] = mine = new JsonObject();
        mine[keyId] = EncodeBase64(sig);
    }

    /// <summary>A new ed25519 key pair: (private seed, unpadded base64 public key).</summary>
    public static (byte[] PrivateKey, string PublicKey) NewKeyPair()
    {
        var seed = System.Security.Cryptography.RandomNumberGenerator.GetBytes(Ed25519.SecretKeySize);
        var pub = new byte[Ed25519.PublicKeySize];
        Ed25519.GeneratePublicKey(seed, 0, pub, 0);
        return (seed, EncodeBase64(pub));
    }

    public static string EncodeBase64(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=');

    public static byte[]? DecodeBase64(string text)
    {
        var s = text.Replace('-', '+').Replace('_', '/');
        s = (s.Length % 4) switch { 2 => s + "==", 3 => s + "=", 1 => "!", _ => s };
        try { return Convert.FromBase64String(s); }
        catch (FormatException) { return null; }
    }

    /// <summary>
    /// The single <c>ed25519:</c> key of a cross-signing key object (its id and public key), checking it belongs to
    /// <paramref name="userId"/> and has <paramref name="usage"/>. 400 <c>M_INVALID_PARAM</c> otherwise.
    /// </summary>
    public static (string KeyId, string PublicKey) CrossSigningKey(JsonObject key, string userId, string usage)
    {
        if (RoomState.GetString(key, "user_id") != userId)
            throw MatrixException.InvalidParam($"The {usage} key must belong to {userId}");
        if (key["usage"] is not JsonArray usages || !usages.Any(u => u is JsonValue v && v.TryGetValue<string>(out var s) && s == usage))
            throw MatrixException.InvalidParam($"Invalid usage for the {usage} key");
        if (key["keys"] is not JsonObject keys || keys.Count != 1)
            throw MatrixException.InvalidParam($"The {usage} key must contain exactly one key");
        var (id, value) = keys.First();
        if (!id.StartsWith("ed25519:", StringComparison.Ordinal) || value is not JsonValue jv || !jv.TryGetValue<string>(out var pub)
            || DecodeBase64(pub)?.Length != Ed25519.PublicKeySize)
            throw MatrixException.InvalidParam($"Invalid {usage} key");
        return (id, pub);
    }
}

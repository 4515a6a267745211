using System.Security.Cryptography;
using System.Text;

namespace Homeserver.Accounts;

/// <summary>Access tokens and device ids: random, and tokens only ever stored as their SHA-256.</summary>
public static class AccessTokens
{
    /// <summary>256 random bits, URL-safe, with a prefix that makes leaked tokens easy to recognise.</summary>
    public static string NewToken() => "hs_" + System.Buffers.Text.Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));

    public static byte[] Hash(string token) => SHA256.HashData(Encoding.UTF8.GetBytes(token));

    /// <summary>The cache key of a token: its hash, so a plain token is never kept in memory longer than a request.</summary>
    public static string CacheKey(byte[] hash) => Convert.ToHexString(hash);

    /// <summary>Ten upper-case letters, as Synapse makes them: short enough for humans to compare.</summary>
    public static string NewDeviceId()
    {
        Span<char> chars = stackalloc char[10];
        for (var i = 0; i < chars.Length; i++) chars[i] = (char)('A' + RandomNumberGenerator.GetInt32(26));
        return new string(chars);
    }

    /// <summary>A localpart for a registration that named none: lower-case, never colliding in practice.</summary>
    public static string NewLocalpart()
    {
        Span<char> chars = stackalloc char[12];
        const string alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
        chars[0] = 'u';
        for (var i = 1; i < chars.Length; i++) chars[i] = alphabet[RandomNumberGenerator.GetInt32(alphabet.Length)];
        return new string(chars);
    }
}

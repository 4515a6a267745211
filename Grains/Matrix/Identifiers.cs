using System.Security.Cryptography;
using System.Text;

namespace Homeserver.Matrix;

/// <summary>
/// Matrix identifier grammar (spec appendix "Identifier Grammar") and generation of new ids. Parsing accepts what
/// other servers may legitimately send (historical user ids); <see cref="IsValidLocalpart"/> is the strict rule for
/// ids we mint ourselves.
/// </summary>
public static class Identifiers
{
    /// <summary>Every identifier, sigil and domain included, is limited to 255 bytes of UTF-8.</summary>
    public const int MaxIdBytes = 255;

    private const string Letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

    /// <summary>The localpart rule for new users: non-empty, only <c>a-z 0-9 . _ = - / +</c>.</summary>
    public static bool IsValidLocalpart(string? localpart)
    {
        if (string.IsNullOrEmpty(localpart) || localpart.Length > MaxIdBytes) return false;
        foreach (var c in localpart)
            if (c is not ((>= 'a' and <= 'z') or (>= '0' and <= '9') or '.' or '_' or '=' or '-' or '/' or '+'))
                return false;
        return true;
    }

    /// <summary>
    /// A user id as servers must accept it: <c>@localpart:server</c> where the localpart may be any non-empty text
    /// without <c>:</c> or NUL (the spec's historical grammar, still in use on federation; we do not go as far as the
    /// empty localpart it also tolerates).
    /// </summary>
    public static bool IsValidUserId(string? userId) => TryParseUserId(userId, out _, out _);

    /// <summary>A user id whose localpart also satisfies the strict rule for new registrations.</summary>
    public static bool IsValidNewUserId(string? userId) =>
        TryParseUserId(userId, out var localpart, out _) && IsValidLocalpart(localpart);

    public static bool TryParseUserId(string? userId, out string localpart, out string server) =>
        TrySplit(userId, '@', out localpart, out server) && localpart.Length > 0;

    public static bool IsValidRoomId(string? roomId) =>
        TrySplit(roomId, '!', out var opaque, out _) && opaque.Length > 0;

    public static bool IsValidRoomAlias(string? alias) =>
        TrySplit(alias, '#', out var localpart, out _) && localpart.Length > 0;

    /// <summary>
    /// Event ids are opaque: <c>$</c> and at least one character, no NUL, at most 255 bytes. (v1/v2 ids carry a
    /// domain, later ones are hashes; both forms pass.)
    /// </summary>
    public static bool IsValidEventId(string? eventId) =>
        eventId is { Length: > 1 } && eventId[0] == '$' && !eventId.Contains('\0') && Utf8Length(eventId) <= MaxIdBytes;

    /// <summary>The server name part of a sigil id (<c>@u:server</c>, <c>!r:server</c>, <c>#a:server</c>, <c>$e:server</c>).</summary>
    public static string? ServerNameOf(string? id)
    {
        if (id is null) return null;
        var colon = id.IndexOf(':');
        return colon < 0 || colon == id.Length - 1 ? null : id[(colon + 1)..];
    }

    /// <summary>
    /// Server name grammar: hostname (IPv4, bracketed IPv6 or DNS name) with an optional port of 1 to 5 digits.
    /// </summary>
    public static bool IsValidServerName(string? serverName)
    {
        if (string.IsNullOrEmpty(serverName)) return false;
        var host = serverName;
        if (serverName[0] == '[')
        {
            var close = serverName.IndexOf(']');
            if (close < 0) return false;
            host = serverName[..(close + 1)];
            var rest = serverName[(close + 1)..];
            if (rest.Length > 0 && !IsPort(rest)) return false;
            var inner = host[1..^1];
            return inner.Length is >= 2 and <= 45 && inner.All(c => char.IsAsciiHexDigit(c) || c is ':' or '.');
        }
        var colon = serverName.LastIndexOf(':');
        if (colon >= 0)
        {
            if (!IsPort(serverName[colon..])) return false;
            host = serverName[..colon];
        }
        // A DNS name also covers dotted-quad IPv4 literals character-wise.
        return host.Length is >= 1 and <= 255 && host.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.');
    }

    /// <summary>A new room id: <c>!</c>, 18 random letters, <c>:server</c>.</summary>
    public static string NewRoomId(string serverName) => "!" + RandomString(18) + ":" + serverName;

    /// <summary>Random ASCII letters from a CSPRNG, for ids, tokens and transaction-independent names.</summary>
    public static string RandomString(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        return RandomNumberGenerator.GetString(Letters, length);
    }

    private static bool IsPort(string colonAndPort) =>
        colonAndPort.Length is >= 2 and <= 6 && colonAndPort[0] == ':' && colonAndPort.Skip(1).All(char.IsAsciiDigit);

    // Splits "<sigil>local:server" at the first colon: localparts cannot contain one, server names can (ports, IPv6).
    private static bool TrySplit(string? id, char sigil, out string local, out string server)
    {
        local = server = "";
        if (id is null || id.Length < 3 || id[0] != sigil || Utf8Length(id) > MaxIdBytes) return false;
        var colon = id.IndexOf(':');
        if (colon < 0) return false;
        var l = id[1..colon];
        if (l.Contains('\0')) return false;
        var s = id[(colon + 1)..];
        if (!IsValidServerName(s)) return false;
        local = l;
        server = s;
        return true;
    }

    private static int Utf8Length(string s) => Encoding.UTF8.GetByteCount(s);
}

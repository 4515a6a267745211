using System.Text;
using Homeserver.Errors;

namespace Homeserver.Matrix;

/// <summary>
/// Bounds on client-chosen values that end up in a database index or a unique key (a PostgreSQL btree entry holds
/// about 2,700 bytes; past it an insert fails) or that the spec or Synapse bound. Too long is 400 <c>M_TOO_LARGE</c>.
/// </summary>
public static class InputLimits
{
    /// <summary>Identifiers, event types and state keys (spec: "Size limits" of events: 255 bytes each), and the other
    /// names that key a row: device ids, tags, account data types, receipt types and threads, key ids, aliases.</summary>
    public const int MaxIdentifierBytes = Identifiers.MaxIdBytes;

    /// <summary>A device's display name (Synapse's <c>MAX_DEVICE_DISPLAY_NAME_LEN</c>).</summary>
    public const int MaxDeviceDisplayNameLength = 100;

    /// <summary>A user's display name (Synapse's <c>MAX_DISPLAYNAME_LEN</c>).</summary>
    public const int MaxDisplayNameLength = 256;

    /// <summary>A user's avatar URL (Synapse's <c>MAX_AVATAR_URL_LEN</c>).</summary>
    public const int MaxAvatarUrlLength = 1000;

    /// <summary>Throws 400 <c>M_TOO_LARGE</c> when <paramref name="value"/> is longer than
    /// <see cref="MaxIdentifierBytes"/> in UTF-8; returns it otherwise.</summary>
    public static string Identifier(string value, string what) =>
        Encoding.UTF8.GetByteCount(value) > MaxIdentifierBytes
            ? throw TooLong(what, $"{MaxIdentifierBytes} bytes")
            : value;

    /// <summary>Throws 400 <c>M_TOO_LARGE</c> when <paramref name="value"/> has more than <paramref name="maxLength"/>
    /// characters; returns it otherwise (null passes).</summary>
    public static string? Text(string? value, int maxLength, string what) =>
        value is not null && value.Length > maxLength ? throw TooLong(what, $"{maxLength} characters") : value;

    private static MatrixException TooLong(string what, string limit) =>
        new(ErrorCodes.TooLarge, $"{what} is too long (at most {limit})", 400);
}

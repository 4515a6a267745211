using System.Text.Json.Nodes;
using Homeserver.Errors;

namespace Homeserver.Matrix;

/// <summary>
/// Content hashes and reference hashes of events (server-server API "Calculating the content hash", room versions
/// "Event IDs"). The content hash lets a server tell that an event was redacted in transit; the reference hash (of the
/// redacted form, so redaction never changes it) is the event id from room version 3 on.
/// </summary>
public static class EventHashing
{
    /// <summary>
    /// SHA-256 of the canonical JSON of the event without <c>unsigned</c>, <c>signatures</c> and <c>hashes</c>, as
    /// unpadded standard base64: the value of <c>hashes.sha256</c>.
    /// </summary>
    public static string ComputeContentHash(JsonObject ev)
    {
        return ToUnpaddedBase64(CanonicalJson.Sha256Without(ev, "unsigned", "signatures", "hashes"));
    }

    /// <summary>Sets <c>hashes.sha256</c> on <paramref name="ev"/> (replacing any hashes it had).</summary>
    public static void AddHashes(JsonObject ev) =>
        ev["hashes"] = new JsonObject { ["sha256"] = ComputeContentHash(ev) };

    /// <summary>True when <c>hashes.sha256</c> is present and matches the event's content.</summary>
    public static bool VerifyContentHash(JsonObject ev) =>
        ev["hashes"] is JsonObject hashes
        && hashes["sha256"] is JsonValue v && v.TryGetValue<string>(out var claimed)
        && claimed.TrimEnd('=') == ComputeContentHash(ev);

    /// <summary>
    /// SHA-256 of the canonical JSON of the event redacted per <paramref name="roomVersion"/>, without
    /// <c>signatures</c> and <c>unsigned</c>.
    /// </summary>
    public static byte[] ComputeReferenceHash(JsonObject ev, string roomVersion)
    {
        var redacted = Redaction.Redact(ev, roomVersion);
        redacted.Remove("signatures");
        redacted.Remove("unsigned");
        // From v3 the id is not part of the event format. A stored copy may carry it for convenience; hashing it
        // would make the id depend on itself.
        if (RoomVersions.Number(roomVersion) >= 3) redacted.Remove("event_id");
        return CanonicalJson.Sha256(redacted);
    }

    /// <summary>
    /// The event id: <c>$</c> + the reference hash as unpadded base64 (standard alphabet in v3, URL-safe from v4).
    /// Room versions 1 and 2 have server-chosen ids, so asking for one there is an error.
    /// </summary>
    public static string ComputeEventId(JsonObject ev, string roomVersion)
    {
        var version = RoomVersions.Number(roomVersion);
        if (version < 3)
            throw new MatrixException(ErrorCodes.UnsupportedRoomVersion,
                $"Event ids in room version {roomVersion} are not derived from the event");
        var hash = ComputeReferenceHash(ev, roomVersion);
        return "$" + (version == 3 ? ToUnpaddedBase64(hash) : ToUnpaddedUrlSafeBase64(hash));
    }

    // One string per hash (every event built is hashed twice), not three from trimming the padding and replacing.
    public static string ToUnpaddedBase64(byte[] bytes)
    {
        var length = (bytes.Length + 2) / 3 * 4;
        var chars = length <= 256 ? stackalloc char[length] : new char[length];
        Convert.TryToBase64Chars(bytes, chars, out var written);
        while (written > 0 && chars[written - 1] == '=') written--;
        return new string(chars[..written]);
    }

    /// <summary>The URL-safe alphabet, unpadded (RFC 4648 §5), as the runtime's <see cref="System.Buffers.Text.Base64Url"/> writes it.</summary>
    public static string ToUnpaddedUrlSafeBase64(byte[] bytes) => System.Buffers.Text.Base64Url.EncodeToString(bytes);
}

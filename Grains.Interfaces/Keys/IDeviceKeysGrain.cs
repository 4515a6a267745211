namespace Homeserver.Keys;

/// <summary>
/// One user's end-to-end keys: device keys, one-time and fallback keys, cross-signing keys and the signatures the user
/// uploads. Key: the full user id. Changes others must learn of (device keys, cross-signing keys, signatures, devices
/// appearing or going) are appended to the <c>device_lists</c> stream (writer 0): one row keyed by the user and one per
/// room the user is joined to, so long-polls of everyone sharing a room wake. Methods that append return the
/// <c>device_lists/0</c> position to wait for (0 when nothing was appended). JSON crosses as text.
/// </summary>
public interface IDeviceKeysGrain : IGrainWithStringKey
{
    /// <summary><c>/keys/upload</c> for one of the user's devices. 400 <c>M_UNKNOWN</c> when a one-time key id is
    /// reused with different content.</summary>
    Task<KeyUploadResult> UploadAsync(KeyUpload upload);

    /// <summary>Claims one key per (device, algorithm): a one-time key, else the fallback key. Returns
    /// <c>{device_id: {"alg:key_id": key}}</c> as JSON text.</summary>
    Task<string> ClaimAsync(KeyClaim[] claims);

    /// <summary><c>/keys/device_signing/upload</c> (after UIA). 400 <c>M_MISSING_PARAM</c> without a master key,
    /// <c>M_INVALID_PARAM</c> for a malformed key, <c>M_INVALID_SIGNATURE</c> for a key the master key didn't sign.</summary>
    Task<long> UploadSigningKeysAsync(string keysJson);

    /// <summary>Whether a <c>/keys/device_signing/upload</c> body needs user-interactive auth: not when it repeats
    /// the stored keys, nor for the first upload (no master key yet), as Synapse allows (MSC3967).</summary>
    Task<SigningKeysUpload> CheckSigningKeysUploadAsync(string keysJson);

    /// <summary><c>/keys/signatures/upload</c>: returns <c>{"failures": ...}</c> JSON and the position.</summary>
    Task<SignaturesUploadResult> UploadSignaturesAsync(string signaturesJson);

    /// <summary>Devices appeared (login) or were deleted (their keys go too); announces the change.</summary>
    Task<long> DevicesChangedAsync(string[] deviceIds, bool deleted);
}

public enum SigningKeysUpload
{
    Unchanged,
    NoAuthNeeded,
    NeedsAuth,
}

[GenerateSerializer, Immutable]
public sealed record KeyUpload(
    [property: Id(0)] string DeviceId,
    [property: Id(1)] string? DeviceKeysJson,
    [property: Id(2)] string? OneTimeKeysJson,
    [property: Id(3)] string? FallbackKeysJson);

/// <param name="CountsJson"><c>{algorithm: count}</c> of the device's unclaimed one-time keys.</param>
[GenerateSerializer, Immutable]
public sealed record KeyUploadResult(
    [property: Id(0)] string CountsJson,
    [property: Id(1)] long Position);

[GenerateSerializer, Immutable]
public sealed record KeyClaim(
    [property: Id(0)] string DeviceId,
    [property: Id(1)] string Algorithm);

[GenerateSerializer, Immutable]
public sealed record SignaturesUploadResult(
    [property: Id(0)] string ResponseJson,
    [property: Id(1)] long Position);

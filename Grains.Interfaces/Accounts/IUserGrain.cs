namespace Homeserver.Accounts;

/// <summary>
/// One account: its password hash, devices and access tokens. Key: the full user id, e.g. <c>"@alice:example.org"</c>
/// (see <see cref="UserIds"/>). Revoking tokens is appended to the <c>caches</c> stream, so every silo's
/// token cache drops them; methods that do so return the <c>caches/0</c> position to wait for (0 when nothing was
/// appended).
/// </summary>
public interface IUserGrain : IGrainWithStringKey
{
    /// <summary>Creates the account (and, unless inhibited, a device and token). 400 <c>M_USER_IN_USE</c> if it exists.</summary>
    Task<LoginResult> RegisterAsync(RegisterRequest request);

    /// <summary>403 <c>M_FORBIDDEN</c> for an unknown user or a wrong password. Reusing an existing device id
    /// replaces that device's token.</summary>
    Task<LoginResult> LoginAsync(LoginRequest request);

    /// <summary>A guest account becomes a full one with the request's password: the guest's tokens are revoked and a
    /// new session opened (unless inhibited). 403 for an account that is no guest.</summary>
    Task<LoginResult> UpgradeGuestAsync(RegisterRequest request);

    /// <summary>A new device and token for an existing account whose owner the caller has already authenticated
    /// (a re-submitted registration session); as <see cref="LoginAsync"/> after its password check.</summary>
    Task<LoginResult> OpenSessionAsync(string? deviceId, string? initialDeviceDisplayName);

    [Idempotent]
    Task<bool> ExistsAsync();

    /// <summary>Whether the account is a server admin (its <c>admin</c> flag; a deactivated account never is).
    /// <c>Homeserver:AdminUsers</c> names admins too: the front end's <c>RequestAuth.IsAdminAsync</c> asks both.</summary>
    [Idempotent]
    Task<bool> IsAdminAsync();

    /// <summary>Sets the account's admin flag; 404 for an unknown user.</summary>
    Task SetAdminAsync(bool admin);

    /// <summary>Sets the account's user type (Synapse's <c>user_type</c>: null, <c>"bot"</c> or <c>"support"</c>; the
    /// caller checks which are allowed); 404 for an unknown user.</summary>
    Task SetUserTypeAsync(string? userType);

    /// <summary>A deactivated account may log in again, with <paramref name="password"/> (deactivation removed the old
    /// one), as Synapse's admin API reactivates; its devices and rooms stay gone. 404 for an unknown user; harmless
    /// for an active one (only its password changes).</summary>
    Task ReactivateAsync(string password);

    /// <summary>Deactivates the account for good: no login any more (<c>M_USER_DEACTIVATED</c>), every token revoked,
    /// every room left and invite rejected, and with <paramref name="erase"/> the profile cleared. Returns the
    /// <c>caches/0</c> position to wait for. Repeating it is harmless.</summary>
    Task<long> DeactivateAsync(bool erase);

    Task<bool> CheckPasswordAsync(string password);

    /// <summary>Replaces the password; with <paramref name="logoutDevices"/>, deletes every device except
    /// <paramref name="keepDeviceId"/>.</summary>
    Task<long> ChangePasswordAsync(string newPassword, bool logoutDevices, string? keepDeviceId);

    [Idempotent]
    Task<DeviceInfo[]> GetDevicesAsync();

    [Idempotent]
    Task<DeviceInfo?> GetDeviceAsync(string deviceId);

    /// <summary>False when the device does not exist.</summary>
    Task<bool> UpdateDeviceAsync(string deviceId, string? displayName);

    /// <summary>Deletes devices and revokes their tokens on every silo. Unknown ids are ignored.</summary>
    Task<long> DeleteDevicesAsync(string[] deviceIds);

    /// <summary>Deletes every device (and token) of the user.</summary>
    Task<long> DeleteAllDevicesAsync();
}

[GenerateSerializer, Immutable]
public sealed record RegisterRequest(
    [property: Id(0)] string? Password,
    [property: Id(1)] bool IsGuest,
    [property: Id(2)] string? DeviceId,
    [property: Id(3)] string? InitialDeviceDisplayName,
    [property: Id(4)] bool InhibitLogin,
    [property: Id(5)] string? PasswordHash = null,
    [property: Id(6)] bool Admin = false,
    [property: Id(7)] string? UserType = null);

[GenerateSerializer, Immutable]
public sealed record LoginRequest(
    [property: Id(0)] string Password,
    [property: Id(1)] string? DeviceId,
    [property: Id(2)] string? InitialDeviceDisplayName);

/// <summary>A new session: <see cref="AccessToken"/> and <see cref="DeviceId"/> are null when login was inhibited.
/// <see cref="CachesPosition"/> is the <c>caches/0</c> position to wait for when an old token was revoked (else 0).</summary>
[GenerateSerializer, Immutable]
public sealed record LoginResult(
    [property: Id(0)] string UserId,
    [property: Id(1)] string? DeviceId,
    [property: Id(2)] string? AccessToken,
    [property: Id(3)] long CachesPosition);

[GenerateSerializer, Immutable]
public sealed record DeviceInfo(
    [property: Id(0)] string DeviceId,
    [property: Id(1)] string? DisplayName);

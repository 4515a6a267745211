namespace Homeserver.Accounts;

/// <summary>Who made an authenticated request: the user and device behind an access token.</summary>
[GenerateSerializer, Immutable]
public sealed record Requester(
    [property: Id(0)] string UserId,
    [property: Id(1)] string DeviceId,
    [property: Id(2)] bool IsGuest);

/// <summary>
/// Resolves an access token to its <see cref="Requester"/> (null when unknown or revoked). Implemented per silo with a
/// cache that logout and device deletion invalidate on every silo through the <c>caches</c> stream.
/// </summary>
public interface IAccessTokenAuthenticator
{
    ValueTask<Requester?> AuthenticateAsync(string accessToken);
}

using System.Text.Json.Nodes;
using Homeserver.Caches;
using Homeserver.Errors;
using Homeserver.Matrix;
using Homeserver.Streams;
using Microsoft.Extensions.Options;

namespace Homeserver.Accounts;

/// <summary>What a registration came to: a <see cref="Challenge"/> (the 401 body) when the client has a stage to
/// complete, else the new account's <see cref="Session"/>.</summary>
public sealed record RegistrationOutcome(string? Challenge, LoginResult? Session);

/// <summary>
/// <c>POST /register</c> (spec: "Account registration and management"): a guest at once; a user after the dummy stage
/// of <see cref="UserInteractiveAuth"/>, whose session remembers the request's parameters (the answering request may
/// carry nothing but <c>auth</c>) and, once it registered its user, answers a re-submission with the same user; a guest
/// that sends its own token keeps its user id and becomes a full account (spec "Guest access").
/// </summary>
public sealed class Registration(IGrainFactory grains, UserInteractiveAuth uia, IAccessTokenAuthenticator authenticator,
    StreamNotifier notifier, IOptions<HomeserverOptions> options)
{
    /// <summary>The operation registration sessions are bound to.</summary>
    private static readonly string Purpose = UserInteractiveAuth.Operation("POST", "/_matrix/client/v3/register");

    /// <summary>Where a registration session keeps the guest it upgrades (its user id, never its token).</summary>
    private const string RememberedGuest = "org.homeserver.guest_user_id";

    /// <summary>Where a registration session keeps the password it was opened with (a hash, never the password).</summary>
    private const string RememberedPasswordHash = "org.homeserver.password_hash";

    /// <param name="kind">The <c>kind</c> query parameter: "", "user" or "guest" (anything else is 400).</param>
    /// <param name="body">The request body, <c>auth</c> included.</param>
    public async Task<RegistrationOutcome> RegisterAsync(string kind, JsonObject body, CancellationToken ct)
    {
        var settings = options.Value;
        var isGuest = kind == "guest";
        if (kind is not ("" or "user" or "guest"))
            throw new MatrixException(ErrorCodes.Unknown, "Invalid kind of account", 400);
        if (isGuest && !settings.EnableGuestAccess)
            throw new MatrixException(ErrorCodes.GuestAccessForbidden, "Guest access is disabled", 403);
        // Guests are governed by guest access alone, as in Synapse.
        if (!isGuest && !settings.EnableRegistration)
            throw MatrixException.Forbidden("Registration has been disabled");

        if (isGuest)
        {
            var newGuest = grains.GetGrain<IUserGrain>(UserIds.Format(AccessTokens.NewLocalpart(), settings.ServerName));
            return Registered(await newGuest.RegisterAsync(new RegisterRequest(null, true,
                DeviceFields.DeviceId(body), DeviceFields.InitialDisplayName(body), false)));
        }

        // The stage answered later may carry nothing but `auth`: the session remembers this request's parameters, the
        // password hashed first so that no plaintext password is stored.
        var auth = UiaSubmission.Parse(body);
        var parameters = (JsonObject)body.DeepClone();
        parameters.Remove("auth");
        parameters.Remove(RememberedPasswordHash); // only ever the server's own
        parameters.Remove(RememberedGuest);
        if (auth?.Type is null && ClientJson.OptionalString(parameters, "guest_access_token") is { } guestTokenToRemember)
        {
            // Checked now, remembered as the guest's user id: no access token is stored with the session.
            parameters[RememberedGuest] = (await GuestAsync(guestTokenToRemember)).UserId;
            parameters.Remove("guest_access_token");
        }
        if (auth?.Type is null && ClientJson.OptionalString(parameters, "password") is { } toRemember)
        {
            PasswordHashing.CheckLength(toRemember);
            parameters.Remove("password");
            parameters[RememberedPasswordHash] = await PasswordHashing.HashAsync(toRemember, settings.PasswordHashCost);
        }
        var outcome = await uia.CheckWithParametersAsync(auth, UserInteractiveAuth.Dummy, Purpose, parameters);
        var p = outcome.Parameters;
        var inhibitLogin = ClientJson.OptionalBool(p, "inhibit_login");
        if (outcome.Result is { } registered)
        {
            // The session already registered its user: the same answer again, with a new session unless inhibited.
            return Registered(inhibitLogin
                ? new LoginResult(registered, null, null, 0)
                : await grains.GetGrain<IUserGrain>(registered).OpenSessionAsync(DeviceFields.DeviceId(p), DeviceFields.InitialDisplayName(p)));
        }

        var username = ClientJson.OptionalString(p, "username");
        var guest = ClientJson.OptionalString(p, "guest_access_token") is { } guestToken
            ? (await GuestAsync(guestToken)).UserId
            : ClientJson.OptionalString(p, RememberedGuest);
        string userId;
        if (guest is not null)
        {
            userId = guest;
            if (username is not null && UserIds.Format(username.ToLowerInvariant(), settings.ServerName) != userId)
                throw MatrixException.Forbidden("A guest can only upgrade its own account");
        }
        else
        {
            userId = username is null
                ? UserIds.Format(AccessTokens.NewLocalpart(), settings.ServerName)
                : UserIds.ValidateNewLocalpart(username, settings.ServerName);
        }
        var user = grains.GetGrain<IUserGrain>(userId);
        // Before the challenge, as Synapse does: a client learns a name is taken without authenticating first.
        if (guest is null && await user.ExistsAsync())
            throw new MatrixException(ErrorCodes.UserInUse, "User ID already taken.", 400);
        if (outcome.Challenge is not null) return new RegistrationOutcome(outcome.Challenge, null);

        var password = ClientJson.OptionalString(p, "password");
        var passwordHash = ClientJson.OptionalString(p, RememberedPasswordHash);
        if (password is null && passwordHash is null) throw MatrixException.MissingParam("Missing 'password'");
        if (password is not null) PasswordHashing.CheckLength(password);
        var request = new RegisterRequest(password, false, DeviceFields.DeviceId(p), DeviceFields.InitialDisplayName(p), inhibitLogin,
            password is null ? passwordHash : null);
        var result = guest is not null ? await user.UpgradeGuestAsync(request) : await user.RegisterAsync(request);
        // An upgraded guest's tokens were revoked: refused on this silo before the answer goes out.
        await CacheInvalidator.WaitAppliedAsync(notifier, result.CachesPosition, ct);
        if (outcome.Session is not null) await uia.RecordResultAsync(outcome.Session, result.UserId);
        return Registered(result);
    }

    private static RegistrationOutcome Registered(LoginResult session) => new(null, session);

    /// <summary>The guest a <c>guest_access_token</c> belongs to; 403 for a token that is unknown or no guest's.</summary>
    private async Task<Requester> GuestAsync(string token) =>
        await authenticator.AuthenticateAsync(token) is { IsGuest: true } guest
            ? guest
            : throw MatrixException.Forbidden("'guest_access_token' is not a guest's access token");
}

/// <summary>The device a client asks for when it registers or logs in.</summary>
public static class DeviceFields
{
    /// <summary>The client's chosen device id: it keys devices and tokens, so it is bounded.</summary>
    public static string? DeviceId(JsonObject body) =>
        ClientJson.OptionalString(body, "device_id") is { } id ? InputLimits.Identifier(id, "'device_id'") : null;

    public static string? InitialDisplayName(JsonObject body) =>
        InputLimits.Text(ClientJson.OptionalString(body, "initial_device_display_name"), InputLimits.MaxDeviceDisplayNameLength,
            "'initial_device_display_name'");
}

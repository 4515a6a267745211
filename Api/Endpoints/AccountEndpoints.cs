using System.Text;
using System.Text.Json.Nodes;
using Homeserver.Matrix;
using Homeserver.Accounts;
using Homeserver.Api.Http;
using Homeserver.Errors;
using Homeserver.Streams;
using Microsoft.Extensions.Options;

namespace Homeserver.Api.Endpoints;

/// <summary>
/// Account management (spec: Client-Server API, "Client Authentication" and "Account registration and management"):
/// register, login, logout, whoami, password change.
/// </summary>
public static class AccountEndpoints
{
    private const string Prefix = "/_matrix/client/v3";
    private const int MaxPasswordLength = 512;
    private static readonly TimeSpan ReadYourWritesTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Maps the accounts area: this class, <see cref="DeviceEndpoints"/> and <see cref="ClientInfoEndpoints"/>.</summary>
    public static IEndpointRouteBuilder MapAccountEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPost($"{Prefix}/register", Register);
        app.MapGet($"{Prefix}/register/available", CheckUsernameAvailability);
        app.MapGet($"{Prefix}/login", GetLoginFlows);
        app.MapPost($"{Prefix}/login", Login);
        app.MapPost($"{Prefix}/logout", Logout);
        app.MapPost($"{Prefix}/logout/all", LogoutAll);
        app.MapGet($"{Prefix}/account/whoami", (Delegate)GetTokenOwner);
        app.MapPost($"{Prefix}/account/password", ChangePassword);
        app.MapPost($"{Prefix}/account/deactivate", Deactivate);
        app.MapDeviceEndpoints();
        app.MapClientInfoEndpoints();
        return app;
    }

    private static async Task<IResult> Register(HttpContext context, IGrainFactory grains, UserInteractiveAuth uia,
        IAccessTokenAuthenticator authenticator, StreamNotifier notifier, IOptions<HomeserverOptions> options)
    {
        var body = JsonBody.Object(context.Request);
        var settings = options.Value;
        var kind = context.Request.Query["kind"].ToString();
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
            var created = await newGuest.RegisterAsync(new RegisterRequest(null, true, NewDeviceId(body), NewDeviceDisplayName(body), false));
            return Results.Json(SessionBody(created, settings.ServerName));
        }

        // The stage answered later may carry nothing but `auth`: the session remembers this request's parameters, the
        // password hashed first so that no plaintext password is stored.
        var auth = ParseAuth(body);
        var parameters = WithoutAuth(body);
        parameters.Remove(RememberedPasswordHash); // only ever the server's own
        parameters.Remove(RememberedGuest);
        if (auth?.Type is null && JsonBody.OptionalString(parameters, "guest_access_token") is { } guestTokenToRemember)
        {
            // Checked now, remembered as the guest's user id: no access token is stored with the session.
            parameters[RememberedGuest] = (await GuestAsync(authenticator, guestTokenToRemember)).UserId;
            parameters.Remove("guest_access_token");
        }
        if (auth?.Type is null && JsonBody.OptionalString(parameters, "password") is { } toRemember)
        {
            CheckPasswordLength(toRemember);
            parameters.Remove("password");
            parameters[RememberedPasswordHash] = await PasswordHashing.HashAsync(toRemember, settings.PasswordHashCost);
        }
        var outcome = await uia.CheckWithParametersAsync(auth, UserInteractiveAuth.Dummy,
            UserInteractiveAuth.Operation("POST", RegisterPath), parameters);
        var p = outcome.Parameters;
        var inhibitLogin = JsonBody.OptionalBool(p, "inhibit_login");
        if (outcome.Result is { } registered)
        {
            // The session already registered its user: the same answer again, with a new session unless inhibited.
            var again = inhibitLogin
                ? new LoginResult(registered, null, null, 0)
                : await grains.GetGrain<IUserGrain>(registered).OpenSessionAsync(NewDeviceId(p), NewDeviceDisplayName(p));
            return Results.Json(SessionBody(again, settings.ServerName));
        }

        var username = JsonBody.OptionalString(p, "username");
        // A guest registering with its own token keeps its user id and becomes a full account (spec "Guest access").
        var guest = JsonBody.OptionalString(p, "guest_access_token") is { } guestToken
            ? (await GuestAsync(authenticator, guestToken)).UserId
            : JsonBody.OptionalString(p, RememberedGuest);
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
        if (outcome.Challenge is not null) return Challenge(outcome.Challenge);

        var password = JsonBody.OptionalString(p, "password");
        var passwordHash = JsonBody.OptionalString(p, RememberedPasswordHash);
        if (password is null && passwordHash is null) throw MatrixException.MissingParam("Missing 'password'");
        if (password is not null) CheckPasswordLength(password);
        var request = new RegisterRequest(password, false, NewDeviceId(p), NewDeviceDisplayName(p), inhibitLogin,
            password is null ? passwordHash : null);
        var result = guest is not null ? await user.UpgradeGuestAsync(request) : await user.RegisterAsync(request);
        await WaitForCachesAsync(notifier, result.CachesPosition, context.RequestAborted);
        if (outcome.Session is not null) await uia.RecordResultAsync(outcome.Session, result.UserId);
        return Results.Json(SessionBody(result, settings.ServerName));
    }

    private const string RegisterPath = Prefix + "/register";

    /// <summary>The guest a <c>guest_access_token</c> belongs to; 403 for a token that is unknown or no guest's.</summary>
    private static async Task<Requester> GuestAsync(IAccessTokenAuthenticator authenticator, string token) =>
        await authenticator.AuthenticateAsync(token) is { IsGuest: true } guest
            ? guest
            : throw MatrixException.Forbidden("'guest_access_token' is not a guest's access token");

    /// <summary>Where a registration session keeps the guest it upgrades (its user id, never its token).</summary>
    private const string RememberedGuest = "org.homeserver.guest_user_id";

    /// <summary>Where a registration session keeps the password it was opened with (a hash, never the password).</summary>
    private const string RememberedPasswordHash = "org.homeserver.password_hash";

    private static void CheckPasswordLength(string password)
    {
        if (password.Length > MaxPasswordLength)
            throw MatrixException.InvalidParam($"Password too long (at most {MaxPasswordLength} characters)");
    }

    /// <summary>A user-interactive request's parameters: its body without <c>auth</c>.</summary>
    internal static JsonObject WithoutAuth(JsonObject body)
    {
        var copy = (JsonObject)body.DeepClone();
        copy.Remove("auth");
        return copy;
    }

    /// <summary>The client's chosen device id (register, login): it keys devices and tokens, so it is bounded.</summary>
    private static string? NewDeviceId(JsonObject body) =>
        JsonBody.OptionalString(body, "device_id") is { } id ? InputLimits.Identifier(id, "'device_id'") : null;

    private static string? NewDeviceDisplayName(JsonObject body) =>
        InputLimits.Text(JsonBody.OptionalString(body, "initial_device_display_name"), InputLimits.MaxDeviceDisplayNameLength,
            "'initial_device_display_name'");

    private static async Task<IResult> CheckUsernameAvailability(string? username, IGrainFactory grains, IOptions<HomeserverOptions> options)
    {
        if (!options.Value.EnableRegistration) throw MatrixException.Forbidden("Registration has been disabled");
        if (string.IsNullOrEmpty(username)) throw MatrixException.MissingParam("Missing 'username'");
        var userId = UserIds.ValidateNewLocalpart(username, options.Value.ServerName);
        if (await grains.GetGrain<IUserGrain>(userId).ExistsAsync())
            throw new MatrixException(ErrorCodes.UserInUse, "User ID already taken.", 400);
        return Results.Json(new JsonObject { ["available"] = true });
    }

    private static IResult GetLoginFlows() =>
        Results.Json(new JsonObject { ["flows"] = new JsonArray(new JsonObject { ["type"] = UserInteractiveAuth.Password }) });

    private static async Task<IResult> Login(HttpContext context, IGrainFactory grains, StreamNotifier notifier, IOptions<HomeserverOptions> options)
    {
        var body = JsonBody.Object(context.Request);
        var type = JsonBody.RequireString(body, "type");
        if (type != UserInteractiveAuth.Password)
            throw new MatrixException(ErrorCodes.Unknown, $"Unknown login type '{Quote.Short(type)}'", 400);

        var user = LoginUser(body) ?? throw MatrixException.MissingParam("Missing 'identifier' (or 'user')");
        var password = JsonBody.RequireString(body, "password");
        var serverName = options.Value.ServerName;
        var localpart = UserIds.LocalpartForLogin(user, serverName);
        if (localpart is null || !UserIds.IsValidLocalpart(localpart))
            throw MatrixException.Forbidden("Invalid username or password");

        var result = await grains.GetGrain<IUserGrain>(UserIds.Format(localpart, serverName)).LoginAsync(new LoginRequest(
            password, NewDeviceId(body), NewDeviceDisplayName(body)));
        await WaitForCachesAsync(notifier, result.CachesPosition, context.RequestAborted);
        return Results.Json(SessionBody(result, serverName));
    }

    private static async Task<IResult> Logout(HttpContext context, IGrainFactory grains, StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var position = await grains.GetGrain<IUserGrain>(requester.UserId).DeleteDevicesAsync([requester.DeviceId]);
        await WaitForCachesAsync(notifier, position, context.RequestAborted);
        return Results.Json(new JsonObject());
    }

    private static async Task<IResult> LogoutAll(HttpContext context, IGrainFactory grains, StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var position = await grains.GetGrain<IUserGrain>(requester.UserId).DeleteAllDevicesAsync();
        await WaitForCachesAsync(notifier, position, context.RequestAborted);
        return Results.Json(new JsonObject());
    }

    private static async Task<IResult> GetTokenOwner(HttpContext context)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        return Results.Json(new JsonObject
        {
            ["user_id"] = requester.UserId,
            ["device_id"] = requester.DeviceId,
            ["is_guest"] = requester.IsGuest,
        });
    }

    private static async Task<IResult> ChangePassword(HttpContext context, IGrainFactory grains, UserInteractiveAuth uia, StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var body = JsonBody.Object(context.Request);
        var challenge = await uia.CheckAsync(ParseAuth(body), UserInteractiveAuth.Password,
            UserInteractiveAuth.Operation(context.Request.Method, context.Request.Path, requester.UserId), requester.UserId);
        if (challenge is not null) return Challenge(challenge);
        var newPassword = JsonBody.RequireString(body, "new_password");
        if (newPassword.Length > MaxPasswordLength)
            throw MatrixException.InvalidParam($"Password too long (at most {MaxPasswordLength} characters)");
        var position = await grains.GetGrain<IUserGrain>(requester.UserId).ChangePasswordAsync(
            newPassword, JsonBody.OptionalBool(body, "logout_devices", fallback: true), requester.DeviceId);
        await WaitForCachesAsync(notifier, position, context.RequestAborted);
        return Results.Json(new JsonObject());
    }

    /// <summary>POST /account/deactivate: the password again, then the account is gone for good (see
    /// <see cref="IUserGrain.DeactivateAsync"/>). No identity server is configured, so there is nothing to unbind.</summary>
    private static async Task<IResult> Deactivate(HttpContext context, IGrainFactory grains, UserInteractiveAuth uia, StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var body = JsonBody.Object(context.Request);
        var erase = JsonBody.OptionalBool(body, "erase");
        var challenge = await uia.CheckAsync(ParseAuth(body), UserInteractiveAuth.Password,
            UserInteractiveAuth.Operation(context.Request.Method, context.Request.Path, requester.UserId), requester.UserId);
        if (challenge is not null) return Challenge(challenge);
        var position = await grains.GetGrain<IUserGrain>(requester.UserId).DeactivateAsync(erase);
        await WaitForCachesAsync(notifier, position, context.RequestAborted);
        return Results.Json(new JsonObject { ["id_server_unbind_result"] = "no-support" });
    }

    /// <summary>The <c>auth</c> object of a user-interactive request, or null when there is none.</summary>
    internal static UiaSubmission? ParseAuth(JsonObject body)
    {
        if (!body.TryGetPropertyValue("auth", out var node) || node is null) return null;
        if (node is not JsonObject auth) throw MatrixException.BadJson("'auth' must be an object");
        return new UiaSubmission(
            JsonBody.OptionalString(auth, "type"),
            JsonBody.OptionalString(auth, "session"),
            LoginUser(auth),
            JsonBody.OptionalString(auth, "password"));
    }

    /// <summary>The user named by an <c>identifier</c> of type <c>m.id.user</c>, or by the deprecated top-level <c>user</c>.</summary>
    private static string? LoginUser(JsonObject body)
    {
        if (body.TryGetPropertyValue("identifier", out var node) && node is not null)
        {
            if (node is not JsonObject identifier) throw MatrixException.BadJson("'identifier' must be an object");
            var type = JsonBody.RequireString(identifier, "type");
            if (type != "m.id.user") throw new MatrixException(ErrorCodes.Unknown, $"Unknown login identifier type '{Quote.Short(type)}'", 400);
            return JsonBody.RequireString(identifier, "user");
        }
        return JsonBody.OptionalString(body, "user");
    }

    private static JsonObject SessionBody(LoginResult result, string serverName)
    {
        var body = new JsonObject { ["user_id"] = result.UserId };
        if (result.AccessToken is not null)
        {
            body["access_token"] = result.AccessToken;
            body["device_id"] = result.DeviceId;
        }
        body["home_server"] = serverName;
        return body;
    }

    internal static IResult Challenge(string json) => Results.Content(json, "application/json", Encoding.UTF8, 401);

    /// <summary>Read-your-writes for revocations: once this returns, this silo no longer accepts the revoked tokens.</summary>
    internal static async Task WaitForCachesAsync(StreamNotifier notifier, long position, CancellationToken ct)
    {
        if (position <= 0) return;
        await notifier.WaitForTokenAsync(notifier.Current.Advance(StreamNames.Caches, 0, position), ReadYourWritesTimeout, ct);
    }
}

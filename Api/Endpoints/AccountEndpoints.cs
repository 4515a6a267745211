using System.Text;
using System.Text.Json.Nodes;
using Homeserver.Accounts;
using Homeserver.Api.Http;
using Homeserver.Api.RateLimiting;
using Homeserver.Caches;
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

    /// <summary>Maps the accounts area: this class, <see cref="DeviceEndpoints"/> and <see cref="ClientInfoEndpoints"/>.</summary>
    public static IEndpointRouteBuilder MapAccountEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPost($"{Prefix}/register", Register);
        app.MapGet($"{Prefix}/register/available", CheckUsernameAvailability);
        app.MapGet($"{Prefix}/login", GetLoginFlows);
        app.MapPost($"{Prefix}/login", Login).WithMetadata(ClientRateLimit.LoginAddress);
        app.MapPost($"{Prefix}/logout", Logout);
        app.MapPost($"{Prefix}/logout/all", LogoutAll);
        app.MapGet($"{Prefix}/account/whoami", (Delegate)GetTokenOwner);
        app.MapPost($"{Prefix}/account/password", ChangePassword);
        app.MapPost($"{Prefix}/account/deactivate", Deactivate);
        app.MapDeviceEndpoints();
        app.MapClientInfoEndpoints();
        return app;
    }

    private static async Task<IResult> Register(HttpContext context, Registration registration, ClientRateLimits limits, IOptions<HomeserverOptions> options)
    {
        // Per client address, counting only accounts made (a registration takes two requests with its challenge).
        var address = ClientRateLimit.Address(context);
        await limits.CheckAsync(ClientRateLimit.Registration, address);
        var body = JsonBody.Object(context.Request);
        var outcome = await registration.RegisterAsync(context.Request.Query["kind"].ToString(), body, context.RequestAborted);
        if (outcome.Session is not null) await limits.RecordAsync(ClientRateLimit.Registration, address);
        return outcome.Challenge is { } challenge ? Challenge(challenge) : Results.Json(SessionBody(outcome.Session!, options.Value.ServerName));
    }

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

    private static async Task<IResult> Login(HttpContext context, IGrainFactory grains, StreamNotifier notifier, ClientRateLimits limits,
        IOptions<HomeserverOptions> options)
    {
        var body = JsonBody.Object(context.Request);
        var type = JsonBody.RequireString(body, "type");
        if (type != UserInteractiveAuth.Password)
            throw new MatrixException(ErrorCodes.Unknown, $"Unknown login type '{Quote.Short(type)}'", 400);

        var user = UiaSubmission.IdentifiedUser(body) ?? throw MatrixException.MissingParam("Missing 'identifier' (or 'user')");
        var password = JsonBody.RequireString(body, "password");
        var serverName = options.Value.ServerName;
        var localpart = UserIds.LocalpartForLogin(user, serverName);
        if (localpart is null || !UserIds.IsValidLocalpart(localpart))
        {
            // As long as a wrong password takes, so that the answer's time does not tell which accounts exist.
            await PasswordHashing.VerifyDummyAsync(password, options.Value.PasswordHashCost);
            throw MatrixException.Forbidden("Invalid username or password");
        }

        // Per account, as Synapse: failed attempts are checked before the password and counted after it, so guessing
        // one account's password from many addresses is as slow as from one; successful logins have a limit of their own.
        var userId = UserIds.Format(localpart, serverName);
        await limits.CheckAsync(ClientRateLimit.LoginFailedAttempts, userId);
        await limits.CheckAsync(ClientRateLimit.LoginAccount, userId);
        LoginResult result;
        try
        {
            result = await grains.GetGrain<IUserGrain>(userId).LoginAsync(new LoginRequest(
                password, DeviceFields.DeviceId(body), DeviceFields.InitialDisplayName(body)));
        }
        catch (MatrixException e) when (e.ErrCode == ErrorCodes.Forbidden)
        {
            await limits.RecordAsync(ClientRateLimit.LoginFailedAttempts, userId);
            throw;
        }
        await limits.RecordAsync(ClientRateLimit.LoginAccount, userId);
        await CacheInvalidator.WaitAppliedAsync(notifier, result.CachesPosition, context.RequestAborted);
        return Results.Json(SessionBody(result, serverName));
    }

    private static async Task<IResult> Logout(HttpContext context, IGrainFactory grains, StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var position = await grains.GetGrain<IUserGrain>(requester.UserId).DeleteDevicesAsync([requester.DeviceId]);
        await CacheInvalidator.WaitAppliedAsync(notifier, position, context.RequestAborted);
        return Results.Json(new JsonObject());
    }

    private static async Task<IResult> LogoutAll(HttpContext context, IGrainFactory grains, StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var position = await grains.GetGrain<IUserGrain>(requester.UserId).DeleteAllDevicesAsync();
        await CacheInvalidator.WaitAppliedAsync(notifier, position, context.RequestAborted);
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
        var challenge = await uia.CheckAsync(UiaSubmission.Parse(body), UserInteractiveAuth.Password,
            UserInteractiveAuth.Operation(context.Request.Method, context.Request.Path, requester.UserId), requester.UserId);
        if (challenge is not null) return Challenge(challenge);
        var newPassword = JsonBody.RequireString(body, "new_password");
        PasswordHashing.CheckLength(newPassword);
        var position = await grains.GetGrain<IUserGrain>(requester.UserId).ChangePasswordAsync(
            newPassword, JsonBody.OptionalBool(body, "logout_devices", fallback: true), requester.DeviceId);
        await CacheInvalidator.WaitAppliedAsync(notifier, position, context.RequestAborted);
        return Results.Json(new JsonObject());
    }

    /// <summary>POST /account/deactivate: the password again, then the account is gone for good (see
    /// <see cref="IUserGrain.DeactivateAsync"/>). No identity server is configured, so there is nothing to unbind.</summary>
    private static async Task<IResult> Deactivate(HttpContext context, IGrainFactory grains, UserInteractiveAuth uia, StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var body = JsonBody.Object(context.Request);
        var erase = JsonBody.OptionalBool(body, "erase");
        var challenge = await uia.CheckAsync(UiaSubmission.Parse(body), UserInteractiveAuth.Password,
            UserInteractiveAuth.Operation(context.Request.Method, context.Request.Path, requester.UserId), requester.UserId);
        if (challenge is not null) return Challenge(challenge);
        var position = await grains.GetGrain<IUserGrain>(requester.UserId).DeactivateAsync(erase);
        await CacheInvalidator.WaitAppliedAsync(notifier, position, context.RequestAborted);
        return Results.Json(new JsonObject { ["id_server_unbind_result"] = "no-support" });
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
}

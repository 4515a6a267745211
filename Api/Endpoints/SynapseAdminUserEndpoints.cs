using System.Reflection;
using System.Text.Json.Nodes;
using Homeserver.Accounts;
using Homeserver.Api.Http;
using Homeserver.Caches;
using Homeserver.Errors;
using Homeserver.Matrix;
using Homeserver.Streams;
using Microsoft.Extensions.Options;

namespace Homeserver.Api.Endpoints;

/// <summary>
/// Synapse's admin API for users, at Synapse's paths with its bodies, query parameters and errors, so that tools built
/// for it work (synapse-admin, <c>register_new_matrix_user</c>, test suites): shared-secret registration, the server
/// version, accounts (list, query, create or modify, deactivate, reset password, admin flag, joined rooms), their devices and whois
/// (synapse/rest/admin/users.py, devices.py; docs/admin_api/user_admin_api.md, register_api.md). Every call but the
/// version and registration needs a server admin's token (403 <c>M_FORBIDDEN</c> otherwise); only local users can be
/// administered.
/// </summary>
public static class SynapseAdminUserEndpoints
{
    public const string Prefix = "/_synapse/admin";

    private static readonly string ServerVersion =
        typeof(SynapseAdminUserEndpoints).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
            .Split('+')[0] ?? "0.0.0";

    public static IEndpointRouteBuilder MapSynapseAdminUserEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapGet($"{Prefix}/v1/server_version", GetServerVersion);
        app.MapGet($"{Prefix}/v1/register", GetRegistrationNonce);
        app.MapPost($"{Prefix}/v1/register", RegisterWithSharedSecret);
        app.MapGet($"{Prefix}/v2/users", ListUsers);
        app.MapGet($"{Prefix}/v3/users", ListUsersV3);
        app.MapGet($"{Prefix}/v2/users/{{userId}}", GetUser);
        app.MapPut($"{Prefix}/v2/users/{{userId}}", PutUser);
        app.MapPost($"{Prefix}/v1/deactivate/{{userId}}", DeactivateUser);
        app.MapPost($"{Prefix}/v1/reset_password/{{userId}}", ResetPassword);
        app.MapGet($"{Prefix}/v1/whois/{{userId}}", AdminEndpoints.GetWhoIs);
        app.MapGet($"{Prefix}/v1/users/{{userId}}/admin", GetAdmin);
        app.MapPut($"{Prefix}/v1/users/{{userId}}/admin", SetAdmin);
        app.MapGet($"{Prefix}/v1/users/{{userId}}/joined_rooms", GetJoinedRooms);
        app.MapGet($"{Prefix}/v2/users/{{userId}}/devices", GetDevices);
        app.MapPost($"{Prefix}/v2/users/{{userId}}/delete_devices", DeleteDevices);
        app.MapGet($"{Prefix}/v2/users/{{userId}}/devices/{{deviceId}}", GetDevice);
        app.MapPut($"{Prefix}/v2/users/{{userId}}/devices/{{deviceId}}", UpdateDevice);
        app.MapDelete($"{Prefix}/v2/users/{{userId}}/devices/{{deviceId}}", DeleteDevice);
        return app;
    }

    /// <summary>GET server_version: needs no token, as in Synapse.</summary>
    private static IResult GetServerVersion() => Results.Json(new JsonObject { ["server_version"] = ServerVersion });

    /// <summary>GET register: a nonce for one shared-secret registration within a minute.</summary>
    private static async Task<IResult> GetRegistrationNonce(SharedSecretRegistration registration) =>
        Results.Json(new JsonObject { ["nonce"] = await registration.NewNonceAsync() });

    /// <summary>POST register: the new account's session, as Synapse answers it.</summary>
    private static async Task<IResult> RegisterWithSharedSecret(HttpContext context, SharedSecretRegistration registration,
        IOptions<HomeserverOptions> options)
    {
        var session = await registration.RegisterAsync(JsonBody.Object(context.Request), context.RequestAborted);
        var body = new JsonObject { ["user_id"] = session.UserId, ["home_server"] = options.Value.ServerName };
        if (session.AccessToken is not null)
        {
            body["access_token"] = session.AccessToken;
            body["device_id"] = session.DeviceId;
        }
        return Results.Json(body);
    }

    /// <summary>GET v2/users: deactivated accounts only when <c>deactivated=true</c>.</summary>
    private static Task<IResult> ListUsers(HttpContext context, UserAdministration users) =>
        ListAsync(context, users, QueryParameters.Boolean(context, "deactivated") ? null : false);

    /// <summary>GET v3/users: <c>deactivated</c> filters both ways, all when absent.</summary>
    private static Task<IResult> ListUsersV3(HttpContext context, UserAdministration users) =>
        ListAsync(context, users, OptionalBoolean(context, "deactivated"));

    private static async Task<IResult> ListAsync(HttpContext context, UserAdministration users, bool? deactivated)
    {
        await RequestAuth.RequireAdminAsync(context);
        var from = QueryParameters.NonNegativeInt(context, "from", 0);
        var limit = QueryParameters.NonNegativeInt(context, "limit", 100);
        var orderBy = QueryParameters.Optional(context, "order_by") ?? "name";
        if (!UserAdministration.OrderColumns.ContainsKey(orderBy))
            throw MatrixException.InvalidParam($"Query parameter \"order_by\" must be one of [{string.Join(", ", UserAdministration.OrderColumns.Keys)}]");
        var descending = QueryParameters.Optional(context, "dir") switch
        {
            null or "f" => false,
            "b" => true,
            _ => throw MatrixException.InvalidParam("Query parameter \"dir\" must be one of [b, f]"),
        };
        var guests = OptionalBoolean(context, "guests") ?? true;
        var page = await users.ListAsync(new UserListQuery(from, limit, QueryParameters.Optional(context, "user_id"),
            QueryParameters.Optional(context, "name"), guests, deactivated, OptionalBoolean(context, "admins"), orderBy, descending));
        var body = new JsonObject
        {
            ["users"] = new JsonArray(page.Users.Select(u => (JsonNode)ListedUser(u)).ToArray()),
            ["total"] = page.Total,
        };
        if (from + limit < page.Total) body["next_token"] = (from + page.Users.Count).ToString();
        return Results.Json(body);
    }

    /// <summary>GET v2/users/{userId}: 404 "User not found" for an unknown user.</summary>
    private static async Task<IResult> GetUser(HttpContext context, string userId, UserAdministration users)
    {
        await RequestAuth.RequireAdminAsync(context);
        userId = LocalUserId(context, userId, "Can only look up local users");
        var user = await users.GetAsync(userId) ?? throw MatrixException.NotFound("User not found");
        return Results.Json(UserDetails(user));
    }

    /// <summary>PUT v2/users/{userId}: 201 with the new account, or 200 with the changed one.</summary>
    private static async Task<IResult> PutUser(HttpContext context, string userId, UserAdministration users)
    {
        var requester = await RequestAuth.RequireAdminAsync(context);
        var body = JsonBody.Object(context.Request);
        userId = LocalUserId(context, userId, "This endpoint can only be used with local users");
        var changes = ParseChanges(body);
        var (created, user) = await users.PutAsync(requester, userId, changes, context.RequestAborted);
        return Results.Json(UserDetails(user), statusCode: created ? StatusCodes.Status201Created : StatusCodes.Status200OK);
    }

    /// <summary>POST deactivate/{userId} <c>{"erase": bool}</c>: every token revoked (refused here before the answer),
    /// rooms left. There are no third-party ids to unbind, so unbinding always "succeeds".</summary>
    private static async Task<IResult> DeactivateUser(HttpContext context, string userId, IGrainFactory grains, StreamNotifier notifier)
    {
        await RequestAuth.RequireAdminAsync(context);
        userId = LocalUserId(context, userId, "Can only deactivate local users");
        var user = grains.GetGrain<IUserGrain>(userId);
        if (!await user.ExistsAsync()) throw MatrixException.NotFound("User not found");
        var body = JsonBody.Object(context.Request, allowEmpty: true);
        var erase = BooleanParam(body, "erase", false, "Param 'erase' must be a boolean, if given", ErrorCodes.BadJson);
        await CacheInvalidator.WaitAppliedAsync(notifier, await user.DeactivateAsync(erase), context.RequestAborted);
        return Results.Json(new JsonObject { ["id_server_unbind_result"] = "success" });
    }

    /// <summary>POST reset_password/{userId} <c>{"new_password", "logout_devices": true}</c>. An admin resetting their
    /// own password keeps the device they asked from, as Synapse does.</summary>
    private static async Task<IResult> ResetPassword(HttpContext context, string userId, IGrainFactory grains, StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireAdminAsync(context);
        userId = LocalUserId(context, userId, "Can only reset the password of local users");
        var body = JsonBody.Object(context.Request);
        if (!body.ContainsKey("new_password")) throw MatrixException.MissingParam("Missing params: ['new_password']");
        var password = JsonBody.RequireString(body, "new_password");
        PasswordHashing.CheckLength(password);
        var logoutDevices = BooleanParam(body, "logout_devices", true, "'logout_devices' parameter is not of type boolean");
        var position = await grains.GetGrain<IUserGrain>(userId).ChangePasswordAsync(password, logoutDevices,
            userId == requester.UserId ? requester.DeviceId : null);
        await CacheInvalidator.WaitAppliedAsync(notifier, position, context.RequestAborted);
        return Results.Json(new JsonObject());
    }

    /// <summary>GET users/{userId}/admin: whether they are a server admin (by configuration or flag).</summary>
    private static async Task<IResult> GetAdmin(HttpContext context, string userId)
    {
        await RequestAuth.RequireAdminAsync(context);
        userId = LocalUserId(context, userId, "Only local users can be admins of this homeserver");
        return Results.Json(new JsonObject { ["admin"] = await RequestAuth.IsAdminAsync(context, userId) });
    }

    /// <summary>PUT users/{userId}/admin <c>{"admin": bool}</c>: sets the account's flag; an admin may not demote
    /// themselves.</summary>
    private static async Task<IResult> SetAdmin(HttpContext context, string userId, IGrainFactory grains)
    {
        var requester = await RequestAuth.RequireAdminAsync(context);
        var body = JsonBody.Object(context.Request);
        if (!body.ContainsKey("admin")) throw MatrixException.MissingParam("Missing params: ['admin']");
        userId = LocalUserId(context, userId, "Only local users can be admins of this homeserver");
        var admin = BooleanParam(body, "admin", false, "'admin' must be a boolean", ErrorCodes.BadJson);
        if (userId == requester.UserId && !admin) throw new MatrixException(ErrorCodes.Unknown, "You may not demote yourself.", 400);
        await grains.GetGrain<IUserGrain>(userId).SetAdminAsync(admin);
        return Results.Json(new JsonObject());
    }

    /// <summary>GET users/{userId}/joined_rooms: <c>{"joined_rooms": [...], "total": n}</c> (empty for an unknown user,
    /// as Synapse).</summary>
    private static async Task<IResult> GetJoinedRooms(HttpContext context, string userId, Rooms.RoomEventStore rooms)
    {
        await RequestAuth.RequireAdminAsync(context);
        userId = LocalUserId(context, userId, "Can only look up local users");
        var joined = await rooms.GetJoinedRoomsAsync(userId);
        return Results.Json(new JsonObject
        {
            ["joined_rooms"] = new JsonArray(joined.Select(r => (JsonNode)r).ToArray()),
            ["total"] = joined.Count,
        });
    }

    /// <summary>GET users/{userId}/devices: <c>{"devices": [...], "total": n}</c>.</summary>
    private static async Task<IResult> GetDevices(HttpContext context, string userId, IGrainFactory grains, DeviceConnections connections)
    {
        userId = await RequireKnownLocalUserAsync(context, userId, grains);
        var devices = await connections.GetDevicesAsync(userId);
        return Results.Json(new JsonObject
        {
            ["devices"] = new JsonArray(devices.Select(d => (JsonNode)DeviceBody(userId, d)).ToArray()),
            ["total"] = devices.Length,
        });
    }

    private static async Task<IResult> GetDevice(HttpContext context, string userId, string deviceId, IGrainFactory grains,
        DeviceConnections connections)
    {
        userId = await RequireKnownLocalUserAsync(context, userId, grains);
        var device = await connections.GetDeviceAsync(userId, deviceId) ?? throw MatrixException.NotFound("No device found");
        return Results.Json(DeviceBody(userId, device));
    }

    /// <summary>PUT users/{userId}/devices/{deviceId} <c>{"display_name"}</c>; without it nothing changes.</summary>
    private static async Task<IResult> UpdateDevice(HttpContext context, string userId, string deviceId, IGrainFactory grains)
    {
        userId = await RequireKnownLocalUserAsync(context, userId, grains);
        var body = JsonBody.Object(context.Request, allowEmpty: true);
        var user = grains.GetGrain<IUserGrain>(userId);
        var found = body.ContainsKey("display_name")
            ? await user.UpdateDeviceAsync(deviceId, InputLimits.Text(JsonBody.OptionalString(body, "display_name"),
                InputLimits.MaxDeviceDisplayNameLength, "'display_name'"))
            : await user.GetDeviceAsync(deviceId) is not null;
        if (!found) throw MatrixException.NotFound("Unknown device");
        return Results.Json(new JsonObject());
    }

    /// <summary>DELETE users/{userId}/devices/{deviceId}: no user-interactive auth for an admin; an unknown device is
    /// no error (as Synapse).</summary>
    private static async Task<IResult> DeleteDevice(HttpContext context, string userId, string deviceId, IGrainFactory grains,
        StreamNotifier notifier)
    {
        userId = await RequireKnownLocalUserAsync(context, userId, grains);
        var position = await grains.GetGrain<IUserGrain>(userId).DeleteDevicesAsync([deviceId]);
        await CacheInvalidator.WaitAppliedAsync(notifier, position, context.RequestAborted);
        return Results.Json(new JsonObject());
    }

    /// <summary>POST users/{userId}/delete_devices <c>{"devices": [ids]}</c>.</summary>
    private static async Task<IResult> DeleteDevices(HttpContext context, string userId, IGrainFactory grains, StreamNotifier notifier)
    {
        userId = await RequireKnownLocalUserAsync(context, userId, grains);
        var body = JsonBody.Object(context.Request);
        if (!body.TryGetPropertyValue("devices", out var node)) throw MatrixException.MissingParam("Missing params: ['devices']");
        if (node is not JsonArray array) throw MatrixException.BadJson("'devices' must be an array of device ids");
        var ids = array.Select(d => d is JsonValue v && v.TryGetValue<string>(out var s)
            ? s
            : throw MatrixException.BadJson("'devices' must be an array of device ids")).ToArray();
        var position = await grains.GetGrain<IUserGrain>(userId).DeleteDevicesAsync(ids);
        await CacheInvalidator.WaitAppliedAsync(notifier, position, context.RequestAborted);
        return Results.Json(new JsonObject());
    }

    /// <summary>The path's user id, decoded and checked: 400 <c>M_INVALID_PARAM</c> when it is no user id, 400 with
    /// Synapse's <paramref name="notLocal"/> message when it names another server.</summary>
    public static string LocalUserId(HttpContext context, string raw, string notLocal)
    {
        var userId = RoomWrites.Segment(raw);
        if (!Identifiers.TryParseUserId(userId, out _, out var server))
            throw MatrixException.InvalidParam($"Invalid user id '{Quote.Short(userId)}'");
        var serverName = context.RequestServices.GetRequiredService<IOptions<HomeserverOptions>>().Value.ServerName;
        if (server != serverName) throw new MatrixException(ErrorCodes.Unknown, notLocal, 400);
        return userId;
    }

    /// <summary>The device calls' preamble: an admin asking about a local user that exists (404 "Unknown user").</summary>
    private static async Task<string> RequireKnownLocalUserAsync(HttpContext context, string raw, IGrainFactory grains)
    {
        await RequestAuth.RequireAdminAsync(context);
        var userId = LocalUserId(context, raw, "Can only lookup local users");
        if (!await grains.GetGrain<IUserGrain>(userId).ExistsAsync()) throw MatrixException.NotFound("Unknown user");
        return userId;
    }

    /// <summary>The body of PUT v2/users/{userId}, checked as Synapse checks it.</summary>
    private static UserChanges ParseChanges(JsonObject body)
    {
        string? userType = null;
        if (body["user_type"] is { } typeNode)
        {
            if (typeNode is not JsonValue tv || !tv.TryGetValue(out userType) || !SharedSecretRegistration.UserTypes.Contains(userType))
                throw new MatrixException(ErrorCodes.Unknown, "Invalid user type", 400);
        }
        bool? admin = body.ContainsKey("admin") ? BooleanParam(body, "admin", false, "Param 'admin' must be a boolean, if given", ErrorCodes.BadJson) : null;
        string? password = null;
        if (body["password"] is { } passwordNode)
        {
            if (passwordNode is not JsonValue pv || !pv.TryGetValue(out password) || password.Length > 512)
                throw new MatrixException(ErrorCodes.Unknown, "Invalid password", 400);
            PasswordHashing.CheckLength(password);
        }
        var logoutDevices = BooleanParam(body, "logout_devices", true, "'logout_devices' parameter is not of type boolean");
        bool? deactivated = body.ContainsKey("deactivated")
            ? BooleanParam(body, "deactivated", false, "'deactivated' parameter is not of type boolean")
            : null;
        if (BooleanParam(body, "locked", false, "'locked' parameter is not of type boolean"))
        {
            if (deactivated == true) throw new MatrixException(ErrorCodes.Unknown, "An user can't be deactivated and locked", 400);
            throw new MatrixException(ErrorCodes.Unknown, "Locking accounts is not supported", 400);
        }
        var setDisplayName = body.ContainsKey("displayname");
        var displayName = setDisplayName ? ProfileText(body, "displayname", InputLimits.MaxDisplayNameLength) : null;
        var setAvatarUrl = body.ContainsKey("avatar_url");
        var avatarUrl = setAvatarUrl ? ProfileText(body, "avatar_url", InputLimits.MaxAvatarUrlLength) : null;
        return new UserChanges(password, logoutDevices, setDisplayName, displayName, setAvatarUrl, avatarUrl, admin, deactivated,
            body.ContainsKey("user_type"), userType);
    }

    /// <summary>A display name or avatar URL: a string within its limit, an empty one or null removing it (as the
    /// profile API does).</summary>
    private static string? ProfileText(JsonObject body, string name, int maxLength)
    {
        var value = JsonBody.OptionalString(body, name);
        if (value is not null && value.Length > maxLength) throw MatrixException.BadJson($"'{name}' is too long (max {maxLength})");
        return string.IsNullOrEmpty(value) ? null : value;
    }

    /// <summary>A boolean body field; anything else is 400 with Synapse's message and code for that field
    /// (<c>M_BAD_JSON</c> for some, <c>M_UNKNOWN</c> for others).</summary>
    private static bool BooleanParam(JsonObject body, string name, bool fallback, string message, string errcode = ErrorCodes.Unknown)
    {
        if (!body.TryGetPropertyValue(name, out var node)) return fallback;
        return node is JsonValue v && v.TryGetValue<bool>(out var b) ? b : throw new MatrixException(errcode, message, 400);
    }

    /// <summary>A boolean query parameter that may be absent (null), as Synapse's <c>parse_boolean</c>.</summary>
    private static bool? OptionalBoolean(HttpContext context, string name) =>
        QueryParameters.Optional(context, name) is null ? null : QueryParameters.Boolean(context, name);

    /// <summary>Synapse's <c>get_user</c>: the account with the fields Homeserver does not have at their neutral values.
    /// <c>creation_ts</c> is in seconds here, as Synapse answers it (the list answers milliseconds).</summary>
    private static JsonObject UserDetails(AdminUser user) => new()
    {
        ["name"] = user.Name,
        ["displayname"] = user.DisplayName,
        ["avatar_url"] = user.AvatarUrl,
        ["threepids"] = new JsonArray(),
        ["external_ids"] = new JsonArray(),
        ["is_guest"] = user.IsGuest,
        ["admin"] = user.Admin,
        ["deactivated"] = user.Deactivated,
        ["erased"] = user.Erased,
        ["shadow_banned"] = false,
        ["locked"] = false,
        ["suspended"] = false,
        ["creation_ts"] = user.CreationTs / 1000,
        ["last_seen_ts"] = user.LastSeenTs,
        ["appservice_id"] = null,
        ["consent_server_notice_sent"] = null,
        ["consent_version"] = null,
        ["consent_ts"] = null,
        ["user_type"] = user.UserType,
    };

    /// <summary>An entry of the users list (Synapse's <c>UserPaginateResponse</c>).</summary>
    private static JsonObject ListedUser(AdminUser user) => new()
    {
        ["name"] = user.Name,
        ["user_type"] = user.UserType,
        ["is_guest"] = user.IsGuest,
        ["admin"] = user.Admin,
        ["deactivated"] = user.Deactivated,
        ["shadow_banned"] = false,
        ["displayname"] = user.DisplayName,
        ["avatar_url"] = user.AvatarUrl,
        ["creation_ts"] = user.CreationTs,
        ["erased"] = user.Erased,
        ["last_seen_ts"] = user.LastSeenTs,
        ["locked"] = false,
    };

    /// <summary>A device as Synapse's admin API shows it: the last connection's fields null when none was recorded.</summary>
    private static JsonObject DeviceBody(string userId, DeviceWithConnections device) => new()
    {
        ["device_id"] = device.Device.DeviceId,
        ["display_name"] = device.Device.DisplayName,
        ["last_seen_ip"] = device.LastSeen?.Ip,
        ["last_seen_ts"] = device.LastSeen?.LastSeen,
        ["last_seen_user_agent"] = device.LastSeen?.UserAgent,
        ["user_id"] = userId,
    };
}

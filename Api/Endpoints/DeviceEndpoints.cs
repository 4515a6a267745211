using System.Text.Json.Nodes;
using Homeserver.Matrix;
using Homeserver.Accounts;
using Homeserver.Api.Http;
using Homeserver.Caches;
using Homeserver.Errors;
using Homeserver.Streams;

namespace Homeserver.Api.Endpoints;

/// <summary>Device management (spec: Client-Server API, "Device Management"). Deleting needs the account password.</summary>
public static class DeviceEndpoints
{
    private const string Prefix = "/_matrix/client/v3";

    public static IEndpointRouteBuilder MapDeviceEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapGet($"{Prefix}/devices", GetDevices);
        app.MapGet($"{Prefix}/devices/{{deviceId}}", GetDevice);
        app.MapPut($"{Prefix}/devices/{{deviceId}}", UpdateDevice);
        app.MapDelete($"{Prefix}/devices/{{deviceId}}", DeleteDevice);
        app.MapPost($"{Prefix}/delete_devices", DeleteDevices);
        return app;
    }

    private static async Task<IResult> GetDevices(HttpContext context, DeviceConnections connections)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var devices = await connections.GetDevicesAsync(requester.UserId);
        return Results.Json(new JsonObject { ["devices"] = new JsonArray(devices.Select(d => (JsonNode)DeviceBody(d)).ToArray()) });
    }

    private static async Task<IResult> GetDevice(HttpContext context, string deviceId, DeviceConnections connections)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var device = await connections.GetDeviceAsync(requester.UserId, deviceId)
            ?? throw MatrixException.NotFound("Unknown device");
        return Results.Json(DeviceBody(device));
    }

    private static async Task<IResult> UpdateDevice(HttpContext context, string deviceId, IGrainFactory grains)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var body = JsonBody.Object(context.Request);
        var displayName = JsonBody.OptionalString(body, "display_name");
        InputLimits.Text(displayName, InputLimits.MaxDeviceDisplayNameLength, "'display_name'");
        if (!await grains.GetGrain<IUserGrain>(requester.UserId).UpdateDeviceAsync(deviceId, displayName))
            throw MatrixException.NotFound("Unknown device");
        return Results.Json(new JsonObject());
    }

    private static async Task<IResult> DeleteDevice(HttpContext context, string deviceId, IGrainFactory grains, UserInteractiveAuth uia, StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        // The first, unauthenticated attempt commonly has no body at all.
        var body = JsonBody.Object(context.Request, allowEmpty: true);
        return await DeleteAsync(context, requester, [deviceId], body, grains, uia, notifier);
    }

    private static async Task<IResult> DeleteDevices(HttpContext context, IGrainFactory grains, UserInteractiveAuth uia, StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var body = JsonBody.Object(context.Request);
        if (!body.TryGetPropertyValue("devices", out var node) || node is null) throw MatrixException.MissingParam("Missing 'devices'");
        if (node is not JsonArray array) throw MatrixException.BadJson("'devices' must be an array of device ids");
        var ids = array.Select(d => d is JsonValue v && v.TryGetValue<string>(out var s)
            ? s
            : throw MatrixException.BadJson("'devices' must be an array of device ids")).ToArray();
        return await DeleteAsync(context, requester, ids, body, grains, uia, notifier);
    }

    private static async Task<IResult> DeleteAsync(HttpContext context, Requester requester, string[] deviceIds, JsonObject body,
        IGrainFactory grains, UserInteractiveAuth uia, StreamNotifier notifier)
    {
        var challenge = await uia.CheckAsync(UiaSubmission.Parse(body), UserInteractiveAuth.Password,
            UserInteractiveAuth.Operation(context.Request.Method, context.Request.Path, requester.UserId), requester.UserId);
        if (challenge is not null) return AccountEndpoints.Challenge(challenge);
        var position = await grains.GetGrain<IUserGrain>(requester.UserId).DeleteDevicesAsync(deviceIds);
        await CacheInvalidator.WaitAppliedAsync(notifier, position, context.RequestAborted);
        return Results.Json(new JsonObject());
    }

    /// <summary>The spec's device: <c>last_seen_ip</c> and <c>last_seen_ts</c> from its latest recorded connection, left
    /// out (they are optional) for a device that has made no authenticated request yet.</summary>
    private static JsonObject DeviceBody(DeviceWithConnections device)
    {
        var body = new JsonObject { ["device_id"] = device.Device.DeviceId };
        if (device.Device.DisplayName is not null) body["display_name"] = device.Device.DisplayName;
        if (device.LastSeen is { } seen)
        {
            body["last_seen_ip"] = seen.Ip;
            body["last_seen_ts"] = seen.LastSeen;
        }
        return body;
    }
}

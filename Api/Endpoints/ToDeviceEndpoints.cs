using System.Text.Json.Nodes;
using Homeserver.Api.Http;
using Homeserver.Errors;
using Homeserver.Matrix;
using Homeserver.Streams;
using Homeserver.ToDevice;

namespace Homeserver.Api.Endpoints;

/// <summary>Send-to-device messaging (spec: Client-Server API, "Send-to-Device messaging").</summary>
public static class ToDeviceEndpoints
{
    public static IEndpointRouteBuilder MapToDeviceEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPut($"{RoomEndpoints.Prefix}/sendToDevice/{{eventType}}/{{txnId}}", SendToDevice);
        return app;
    }

    private static async Task<IResult> SendToDevice(HttpContext context, string eventType, string txnId, IGrainFactory grains, StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var body = JsonBody.Object(context.Request);
        if (body["messages"] is not JsonObject messages) throw MatrixException.BadJson("'messages' must be an object");
        foreach (var (userId, byDevice) in messages)
        {
            if (!Identifiers.IsValidUserId(userId)) throw MatrixException.InvalidParam($"Invalid user id '{Quote.Short(userId)}'");
            if (byDevice is not JsonObject devices || devices.Any(kv => kv.Value is not JsonObject))
                throw MatrixException.BadJson("Each user's messages must map device ids to JSON objects");
            foreach (var (deviceId, _) in devices) InputLimits.Identifier(deviceId, "A device id");
        }
        var type = RoomWrites.Segment(eventType);
        if (type.Length == 0 || type.Length > 255) throw MatrixException.InvalidParam("Invalid event type");
        var position = await grains.GetGrain<IToDeviceGrain>(requester.UserId)
            .SendAsync(requester.DeviceId, RoomWrites.Segment(txnId), type, messages.ToJsonString());
        await UserStreamWrites.WaitAsync(notifier, StreamNames.ToDevice, position, context.RequestAborted);
        return Results.Json(new JsonObject());
    }
}

using System.Text.Json.Nodes;
using Homeserver.Matrix;
using Homeserver.Api.Http;
using Homeserver.Api.RateLimiting;
using Homeserver.Errors;
using Homeserver.Rooms;
using Homeserver.Streams;

namespace Homeserver.Api.Endpoints;

/// <summary>
/// Sending events (spec: Client-Server API, "Sending events to a room" and "Redactions"): messages, state and
/// redactions. Sends and redactions are idempotent per device and transaction id.
/// </summary>
public static class EventEndpoints
{
    private const string Prefix = RoomEndpoints.Prefix;

    public static IEndpointRouteBuilder MapEventEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPut($"{Prefix}/rooms/{{roomId}}/send/{{eventType}}/{{txnId}}", SendMessage).WithMetadata(ClientBodyPolicy.Event, ClientRateLimit.Message);
        // The legacy form without a transaction id (r0 clients, SyTest). It gets one of the server's making, so that
        // the front end can still retry it across a silo loss without sending it twice.
        app.MapPost($"{Prefix}/rooms/{{roomId}}/send/{{eventType}}",
            (HttpContext context, string roomId, string eventType, IGrainFactory grains, StreamNotifier notifier) =>
                SendMessage(context, roomId, eventType, $"{ServerTransactionPrefix}{Guid.NewGuid():N}", grains, notifier))
            .WithMetadata(ClientBodyPolicy.Event, ClientRateLimit.Message);
        app.MapPut($"{Prefix}/rooms/{{roomId}}/state/{{eventType}}/{{**stateKey}}", SetRoomStateWithKey).WithMetadata(ClientBodyPolicy.Event, ClientRateLimit.Message);
        app.MapPut($"{Prefix}/rooms/{{roomId}}/redact/{{eventId}}/{{txnId}}", RedactEvent).WithMetadata(ClientBodyPolicy.Event, ClientRateLimit.Message);
        return app;
    }

    private const string ServerTransactionPrefix = "m.server.";

    private static async Task<IResult> SendMessage(HttpContext context, string roomId, string eventType, string txnId,
        IGrainFactory grains, StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var body = JsonBody.Object(context.Request);
        var command = new SendEventCommand(requester.UserId, requester.DeviceId, RoomWrites.Segment(txnId),
            RequireType(eventType), null, body.ToJsonString());
        var result = await grains.GetGrain<IRoomGrain>(RoomWrites.RoomId(roomId)).SendAsync(command);
        await RoomWrites.WaitAsync(notifier, result, context.RequestAborted);
        return Results.Json(new JsonObject { ["event_id"] = result.EventId });
    }

    private static async Task<IResult> SetRoomStateWithKey(HttpContext context, string roomId, string eventType, string? stateKey,
        IGrainFactory grains, StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var body = JsonBody.Object(context.Request);
        var command = new SendEventCommand(requester.UserId, requester.DeviceId, null, RequireType(eventType),
            InputLimits.Identifier(RoomWrites.Segment(stateKey ?? ""), "The state key"), body.ToJsonString());
        var result = await grains.GetGrain<IRoomGrain>(RoomWrites.RoomId(roomId)).SendAsync(command);
        await RoomWrites.WaitAsync(notifier, result, context.RequestAborted);
        return Results.Json(new JsonObject { ["event_id"] = result.EventId });
    }

    private static async Task<IResult> RedactEvent(HttpContext context, string roomId, string eventId, string txnId,
        IGrainFactory grains, StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var body = JsonBody.Object(context.Request, allowEmpty: true);
        var command = new RedactCommand(requester.UserId, requester.DeviceId, RoomWrites.Segment(txnId), RoomWrites.Segment(eventId),
            JsonBody.OptionalString(body, "reason"));
        var result = await grains.GetGrain<IRoomGrain>(RoomWrites.RoomId(roomId)).RedactAsync(command);
        await RoomWrites.WaitAsync(notifier, result, context.RequestAborted);
        return Results.Json(new JsonObject { ["event_id"] = result.EventId });
    }

    private static string RequireType(string eventType)
    {
        var type = RoomWrites.Segment(eventType);
        if (type.Length == 0 || type.Length > 255) throw MatrixException.InvalidParam("Invalid event type");
        return type;
    }
}

using System.Text.Json.Nodes;
using Homeserver.Matrix;
using Homeserver.Api.Http;
using Homeserver.Errors;
using Homeserver.Receipts;
using Homeserver.Streams;

namespace Homeserver.Api.Endpoints;

/// <summary>Receipts and read markers (spec: Client-Server API, "Receipts" and "Fully read markers").</summary>
public static class ReceiptEndpoints
{
    public static IEndpointRouteBuilder MapReceiptEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPost($"{RoomEndpoints.Prefix}/rooms/{{roomId}}/receipt/{{receiptType}}/{{eventId}}", PostReceipt);
        app.MapPost($"{RoomEndpoints.Prefix}/rooms/{{roomId}}/read_markers", SetReadMarker);
        return app;
    }

    private static async Task<IResult> PostReceipt(HttpContext context, string roomId, string receiptType, string eventId,
        IGrainFactory grains, StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var room = RoomWrites.RoomId(roomId);
        var type = RoomWrites.Segment(receiptType);
        var id = RoomWrites.Segment(eventId);
        var body = JsonBody.Object(context.Request, allowEmpty: true);
        var threadId = JsonBody.OptionalString(body, "thread_id");
        if (threadId is { Length: 0 }) throw MatrixException.InvalidParam("'thread_id' may not be empty");
        if (threadId is not null) InputLimits.Identifier(threadId, "'thread_id'");
        var grain = grains.GetGrain<IReceiptsGrain>(room);
        var result = type switch
        {
            "m.read" or "m.read.private" => await grain.SetReceiptAsync(requester.UserId, type, id, threadId),
            // Synapse accepts the fully-read marker here too; it has no thread.
            "m.fully_read" when threadId is null => await grain.SetReadMarkersAsync(requester.UserId, id, null, null),
            "m.fully_read" => throw MatrixException.InvalidParam("m.fully_read cannot be threaded"),
            _ => throw MatrixException.InvalidParam($"Unknown receipt type '{Quote.Short(type)}'"),
        };
        return await DoneAsync(notifier, result, context);
    }

    private static async Task<IResult> SetReadMarker(HttpContext context, string roomId, IGrainFactory grains, StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var room = RoomWrites.RoomId(roomId);
        var body = JsonBody.Object(context.Request);
        var result = await grains.GetGrain<IReceiptsGrain>(room).SetReadMarkersAsync(requester.UserId,
            JsonBody.OptionalString(body, "m.fully_read"), JsonBody.OptionalString(body, "m.read"), JsonBody.OptionalString(body, "m.read.private"));
        return await DoneAsync(notifier, result, context);
    }

    private static async Task<IResult> DoneAsync(StreamNotifier notifier, ReadMarkersResult result, HttpContext context)
    {
        await UserStreamWrites.WaitAsync(notifier, StreamNames.Receipts, result.ReceiptsPosition, context.RequestAborted);
        await UserStreamWrites.WaitAsync(notifier, StreamNames.AccountData, result.AccountDataPosition, context.RequestAborted);
        return Results.Json(new JsonObject());
    }
}

using System.Text.Json.Nodes;
using Homeserver.Api.Http;
using Homeserver.Errors;
using Homeserver.Streams;
using Homeserver.Typing;

namespace Homeserver.Api.Endpoints;

/// <summary>Typing notifications (spec: Client-Server API, "Typing Notifications").</summary>
public static class TypingEndpoints
{
    private const long DefaultTimeoutMs = 30_000;

    public static IEndpointRouteBuilder MapTypingEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPut($"{RoomEndpoints.Prefix}/rooms/{{roomId}}/typing/{{userId}}", SetTyping);
        return app;
    }

    private static async Task<IResult> SetTyping(HttpContext context, string roomId, string userId, IGrainFactory grains, StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var room = RoomWrites.RoomId(roomId);
        if (RoomWrites.Segment(userId) != requester.UserId) throw MatrixException.Forbidden("Cannot set another user's typing state");
        var body = JsonBody.Object(context.Request);
        if (body["typing"] is not JsonValue t || !t.TryGetValue<bool>(out var typing)) throw MatrixException.BadJson("'typing' must be a boolean");
        var timeout = DefaultTimeoutMs;
        if (body["timeout"] is { } node && (node is not JsonValue v || !v.TryGetValue(out timeout) || timeout < 0))
            throw MatrixException.BadJson("'timeout' must be a non-negative integer");
        var position = await grains.GetGrain<ITypingGrain>(room).SetTypingAsync(requester.UserId, typing, timeout);
        await UserStreamWrites.WaitAsync(notifier, StreamNames.Typing, position, context.RequestAborted);
        return Results.Json(new JsonObject());
    }
}

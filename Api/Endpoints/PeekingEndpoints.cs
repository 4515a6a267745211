using System.Text.Json.Nodes;
using Homeserver.Api.Http;
using Homeserver.Errors;
using Homeserver.Matrix;
using Homeserver.Streams;
using Homeserver.Sync;

namespace Homeserver.Api.Endpoints;

/// <summary>
/// Room peeking (MSC2753): a device follows a world readable room in its /sync (<c>rooms.peek</c>) without joining it.
/// Each call is one call to the user's <see cref="IRoomPeekGrain"/>, and answers once this silo has applied the write,
/// so the device's next /sync, on any silo, shows the room.
/// </summary>
public static class PeekingEndpoints
{
    private const string Prefix = RoomEndpoints.Prefix;

    public static IEndpointRouteBuilder MapPeekingEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPost($"{Prefix}/peek/{{roomIdOrAlias}}", PeekRoom);
        app.MapPost($"{Prefix}/rooms/{{roomId}}/unpeek", UnpeekRoom);
        return app;
    }

    /// <summary>POST /peek/{roomIdOrAlias}</summary>
    private static async Task<IResult> PeekRoom(HttpContext context, string roomIdOrAlias, IGrainFactory grains, StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        JsonBody.Object(context.Request, allowEmpty: true); // MSC2753 sends {}; nothing in it is read, but it must be JSON
        var target = RoomWrites.Segment(roomIdOrAlias);
        if (target.StartsWith('#'))
        {
            if (!Identifiers.IsValidRoomAlias(target)) throw MatrixException.InvalidParam($"Invalid room alias '{Quote.Short(target)}'");
        }
        else if (target.StartsWith('!')) target = RoomWrites.RoomId(target);
        else throw MatrixException.InvalidParam($"'{Quote.Short(target)}' is neither a room id nor a room alias");
        var started = await grains.GetGrain<IRoomPeekGrain>(requester.UserId).PeekAsync(requester.DeviceId, target);
        await UserStreamWrites.WaitAsync(notifier, StreamNames.AccountData, started.Position, context.RequestAborted);
        return Results.Json(new JsonObject { ["room_id"] = started.RoomId });
    }

    /// <summary>POST /rooms/{roomId}/unpeek: idempotent (unpeeking a room one does not peek into succeeds).</summary>
    private static async Task<IResult> UnpeekRoom(HttpContext context, string roomId, IGrainFactory grains, StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        JsonBody.Object(context.Request, allowEmpty: true);
        var position = await grains.GetGrain<IRoomPeekGrain>(requester.UserId).UnpeekAsync(requester.DeviceId, RoomWrites.RoomId(roomId));
        await UserStreamWrites.WaitAsync(notifier, StreamNames.AccountData, position, context.RequestAborted);
        return Results.Json(new JsonObject());
    }
}

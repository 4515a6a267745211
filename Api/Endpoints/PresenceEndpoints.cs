using System.Text.Json.Nodes;
using Homeserver.Api.Http;
using Homeserver.Errors;
using Homeserver.Presence;
using Homeserver.Rooms;
using Homeserver.Streams;
using Microsoft.Extensions.Options;

namespace Homeserver.Api.Endpoints;

/// <summary>Presence (spec: Client-Server API, "Presence"). With presence disabled, as in Synapse, PUT is accepted and
/// ignored and GET answers offline.</summary>
public static class PresenceEndpoints
{
    public static IEndpointRouteBuilder MapPresenceEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapGet($"{RoomEndpoints.Prefix}/presence/{{userId}}/status", GetPresence);
        app.MapPut($"{RoomEndpoints.Prefix}/presence/{{userId}}/status", SetPresence);
        return app;
    }

    private static async Task<IResult> GetPresence(HttpContext context, string userId, IGrainFactory grains, RoomEventStore rooms,
        IOptions<PresenceOptions> options)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var target = RoomWrites.Segment(userId);
        if (!options.Value.EnablePresence) return Results.Json(new JsonObject { ["presence"] = "offline" });
        if (target != requester.UserId)
        {
            var mine = (await rooms.GetJoinedRoomsAsync(requester.UserId)).ToHashSet(StringComparer.Ordinal);
            if (!(await rooms.GetJoinedRoomsAsync(target)).Any(mine.Contains))
                throw MatrixException.Forbidden("You are not allowed to see their presence");
        }
        // The grain, not the table: last_active moves in memory while the user stays currently active.
        var presence = await grains.GetGrain<IPresenceGrain>(target).GetAsync();
        return Results.Json(PresenceSyncSection.Content(presence, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
    }

    private static async Task<IResult> SetPresence(HttpContext context, string userId, IGrainFactory grains, StreamNotifier notifier,
        IOptions<PresenceOptions> options)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        if (RoomWrites.Segment(userId) != requester.UserId) throw MatrixException.Forbidden("Can only set your own presence state");
        var body = JsonBody.Object(context.Request);
        var presence = JsonBody.RequireString(body, "presence");
        var statusMsg = JsonBody.OptionalString(body, "status_msg");
        if (!PresenceStore.States.Contains(presence)) throw MatrixException.InvalidParam($"Invalid presence state '{Quote.Short(presence)}'");
        if (options.Value.EnablePresence)
        {
            var position = await grains.GetGrain<IPresenceGrain>(requester.UserId).SetAsync(presence, statusMsg);
            await UserStreamWrites.WaitAsync(notifier, StreamNames.Presence, position, context.RequestAborted);
        }
        return Results.Json(new JsonObject());
    }
}

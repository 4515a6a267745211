using Homeserver.Api.Http;
using Homeserver.Errors;
using Homeserver.Sync;

namespace Homeserver.Api.Endpoints;

/// <summary>
/// The API before /sync (spec r0.6.1 "Getting events for a room" and "Syncing"): <c>GET /events</c>,
/// <c>GET /initialSync</c> and <c>GET /rooms/{roomId}/initialSync</c>, deprecated but still called by older clients,
/// bridges and conformance suites. Answered by <see cref="LegacySyncHandler"/>.
/// </summary>
public static class LegacySyncEndpoints
{
    public static IEndpointRouteBuilder MapLegacySyncEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapGet($"{RoomEndpoints.Prefix}/events", GetEvents);
        app.MapGet($"{RoomEndpoints.Prefix}/initialSync", InitialSync);
        app.MapGet($"{RoomEndpoints.Prefix}/rooms/{{roomId}}/initialSync", RoomInitialSync);
        return app;
    }

    private static async Task<IResult> GetEvents(HttpContext context, LegacySyncHandler handler, IHostApplicationLifetime lifetime)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var timeout = QueryParameters.Timeout(context, SyncEndpoints.MaxTimeout);
        var limit = Math.Clamp(QueryParameters.NonNegativeInt(context, "limit", LegacySyncHandler.DefaultEventsLimit), 1, LegacySyncHandler.MaxEventsLimit);
        var roomId = QueryParameters.Optional(context, "room_id") is { } room ? RoomWrites.RoomId(room) : null;
        // Guests follow single rooms (peeking, spec "Guest access"), not the whole event stream.
        if (requester.IsGuest && roomId is null)
            throw new MatrixException(ErrorCodes.GuestAccessForbidden, "Guests may only follow one room's events (room_id)", 403);
        var response = await handler.EventsAsync(requester, QueryParameters.Optional(context, "from"), timeout, limit, roomId,
            context.RequestAborted, lifetime.ApplicationStopping);
        return Results.Content(response.ToJsonString(), "application/json");
    }

    private static async Task<IResult> InitialSync(HttpContext context, LegacySyncHandler handler)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var limit = Math.Clamp(QueryParameters.NonNegativeInt(context, "limit", 10), 0, LegacySyncHandler.MaxEventsLimit);
        var response = await handler.InitialSyncAsync(requester, limit, QueryParameters.Boolean(context, "archived"), context.RequestAborted);
        return Results.Content(response.ToJsonString(), "application/json");
    }

    private static async Task<IResult> RoomInitialSync(HttpContext context, string roomId, LegacySyncHandler handler)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var limit = Math.Clamp(QueryParameters.NonNegativeInt(context, "limit", 10), 0, LegacySyncHandler.MaxEventsLimit);
        var response = await handler.RoomInitialSyncAsync(requester, RoomWrites.RoomId(roomId), limit, context.RequestAborted);
        return Results.Content(response.ToJsonString(), "application/json");
    }
}

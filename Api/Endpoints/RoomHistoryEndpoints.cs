using Homeserver.Api.Http;
using Homeserver.Errors;
using Homeserver.Sync;

namespace Homeserver.Api.Endpoints;

/// <summary>Client-Server API: room history (<c>GET /rooms/{roomId}/messages</c>), relations (<c>GET /relations</c>) and
/// threads (<c>GET /threads</c>, under <c>/_matrix/client/v1</c> as the spec puts them).</summary>
public static class RoomHistoryEndpoints
{
    private const string V1 = "/_matrix/client/v1";

    /// <summary>Synapse's page sizes for relations and threads when the client names none.</summary>
    private const int DefaultRelationsLimit = 5, DefaultThreadsLimit = 5;

    public static IEndpointRouteBuilder MapRoomHistoryEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapGet($"{RoomEndpoints.Prefix}/rooms/{{roomId}}/messages", GetRoomEvents);
        app.MapGet($"{V1}/rooms/{{roomId}}/relations/{{eventId}}", (HttpContext c, string roomId, string eventId, RoomHistory h) =>
            GetRelations(c, roomId, eventId, null, null, h));
        app.MapGet($"{V1}/rooms/{{roomId}}/relations/{{eventId}}/{{relType}}", (HttpContext c, string roomId, string eventId, string relType, RoomHistory h) =>
            GetRelations(c, roomId, eventId, relType, null, h));
        app.MapGet($"{V1}/rooms/{{roomId}}/relations/{{eventId}}/{{relType}}/{{eventType}}",
            (HttpContext c, string roomId, string eventId, string relType, string eventType, RoomHistory h) =>
                GetRelations(c, roomId, eventId, relType, eventType, h));
        app.MapGet($"{V1}/rooms/{{roomId}}/threads", GetThreads);
        return app;
    }

    /// <summary>GET /rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]</summary>
    private static async Task<IResult> GetRelations(HttpContext context, string roomId, string eventId, string? relType, string? eventType,
        RoomHistory history)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var dir = QueryParameters.Optional(context, "dir") ?? "b";
        if (dir is not ("b" or "f")) throw MatrixException.InvalidParam("'dir' must be 'b' or 'f'");
        var request = new RelationsRequest(RoomWrites.RoomId(roomId), RoomWrites.Segment(eventId),
            relType is null ? null : RoomWrites.Segment(relType), eventType is null ? null : RoomWrites.Segment(eventType),
            QueryParameters.Optional(context, "from"), QueryParameters.Optional(context, "to"), dir == "b",
            QueryParameters.NonNegativeInt(context, "limit", DefaultRelationsLimit), QueryParameters.Boolean(context, "recurse"));
        return Results.Json(await history.GetRelationsAsync(requester, request, context.RequestAborted));
    }

    /// <summary>GET /rooms/{roomId}/threads</summary>
    private static async Task<IResult> GetThreads(HttpContext context, string roomId, RoomHistory history)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var include = QueryParameters.Optional(context, "include") ?? "all";
        if (include is not ("all" or "participated")) throw MatrixException.InvalidParam("'include' must be 'all' or 'participated'");
        var request = new ThreadsRequest(RoomWrites.RoomId(roomId), include == "participated", QueryParameters.Optional(context, "from"),
            QueryParameters.NonNegativeInt(context, "limit", DefaultThreadsLimit));
        return Results.Json(await history.GetThreadsAsync(requester, request, context.RequestAborted));
    }

    /// <summary>GET /rooms/{roomId}/messages</summary>
    private static async Task<IResult> GetRoomEvents(HttpContext context, string roomId, RoomHistory history)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var query = context.Request.Query;
        var dir = query["dir"].ToString();
        if (dir is not ("b" or "f")) throw MatrixException.InvalidParam("'dir' must be 'b' or 'f'");
        var limit = QueryParameters.NonNegativeInt(context, "limit", 10);
        string? Optional(string name) => QueryParameters.Optional(context, name);
        var response = await history.GetMessagesAsync(requester,
            new MessagesRequest(RoomWrites.RoomId(roomId), Optional("from"), Optional("to"), dir == "b", limit, Optional("filter")),
            context.RequestAborted);
        return Results.Content(response.ToJsonString(), "application/json");
    }
}

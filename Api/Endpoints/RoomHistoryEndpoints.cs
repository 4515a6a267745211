using Homeserver.Api.Http;
using Homeserver.Errors;
using Homeserver.Sync;

namespace Homeserver.Api.Endpoints;

/// <summary>Client-Server API: room history (<c>GET /rooms/{roomId}/messages</c>).</summary>
public static class RoomHistoryEndpoints
{
    public static IEndpointRouteBuilder MapRoomHistoryEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapGet($"{RoomEndpoints.Prefix}/rooms/{{roomId}}/messages", GetRoomEvents);
        return app;
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

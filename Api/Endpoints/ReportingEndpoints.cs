using System.Text.Json.Nodes;
using Homeserver.Admin;
using Homeserver.Api.Http;
using Homeserver.Errors;
using Homeserver.Rooms;

namespace Homeserver.Api.Endpoints;

/// <summary>
/// Reporting content (spec: Client-Server API, "Reporting content"): a user reports an event or a room to the server's admins,
/// who read the reports through the admin API (<see cref="SynapseAdminRoomEndpoints"/>). Answers and errors are
/// Synapse's (<c>synapse/rest/client/reporting.py</c>, without MSC4277's always-200).
/// </summary>
public static class ReportingEndpoints
{
    public static IEndpointRouteBuilder MapReportingEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPost($"{RoomEndpoints.Prefix}/rooms/{{roomId}}/report/{{eventId}}", ReportEvent);
        app.MapPost($"{RoomEndpoints.Prefix}/rooms/{{roomId}}/report", ReportRoom);
        return app;
    }

    /// <summary>POST <c>{"reason"?, "score"?}</c>: 404 when the event does not exist in the room or the reporter may
    /// not see it (spec v1.8+: the same answer either way, so a report cannot probe for events).</summary>
    private static async Task<IResult> ReportEvent(HttpContext context, string roomId, string eventId, RoomEventStore store,
        RoomVisibility visibility, EventReportStore reports)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        roomId = RoomWrites.RoomId(roomId);
        eventId = RoomWrites.Segment(eventId);
        var body = JsonBody.Object(context.Request);
        if (body["reason"] is { } reasonNode && (reasonNode is not JsonValue rv || !rv.TryGetValue<string>(out _)))
            throw MatrixException.BadJson("Param 'reason' must be a string");
        long? score = null;
        if (body["score"] is { } scoreNode)
            score = scoreNode is JsonValue sv && sv.TryGetValue<long>(out var s) ? s : throw MatrixException.BadJson("Param 'score' must be an integer");

        var ev = await store.GetEventAsync(eventId);
        if (ev is null || ev.RoomId != roomId || !await visibility.CanSeeAsync(requester.UserId, ev))
            throw MatrixException.NotFound("Unable to report event: it does not exist or you aren't able to see it.");
        await reports.AddAsync(roomId, eventId, requester.UserId, JsonBody.OptionalString(body, "reason"), score);
        return Results.Json(new JsonObject());
    }

    /// <summary>POST <c>{"reason"}</c> (spec v1.13): 404 for a room this server does not know.</summary>
    private static async Task<IResult> ReportRoom(HttpContext context, string roomId, RoomEventStore store, EventReportStore reports)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        roomId = RoomWrites.RoomId(roomId);
        var body = JsonBody.Object(context.Request);
        if (body["reason"] is not JsonValue rv || !rv.TryGetValue<string>(out var reason))
            throw MatrixException.BadJson("Param 'reason' must be a string");
        if (await store.GetRoomAsync(roomId) is null) throw MatrixException.NotFound("Room does not exist");
        await reports.AddRoomReportAsync(roomId, requester.UserId, reason);
        return Results.Json(new JsonObject());
    }
}

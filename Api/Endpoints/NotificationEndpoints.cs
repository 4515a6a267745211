using System.Globalization;
using Homeserver.Api.Http;
using Homeserver.Errors;
using Homeserver.PushRules;

namespace Homeserver.Api.Endpoints;

/// <summary>
/// Notifications (spec: Client-Server API, "Listing Notifications"): <c>GET /notifications</c> with <c>from</c>,
/// <c>limit</c> and <c>only=highlight</c>, served on this process from the user's push rules
/// (<see cref="NotificationList"/>).
/// </summary>
public static class NotificationEndpoints
{
    private const int DefaultLimit = 50, MaxLimit = 1_000;

    public static IEndpointRouteBuilder MapNotificationEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapGet($"{RoomEndpoints.Prefix}/notifications", GetAsync);
        return app;
    }

    private static async Task<IResult> GetAsync(HttpContext context, NotificationList notifications)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        long? from = QueryParameters.Optional(context, "from") is { } token
            ? long.TryParse(token, NumberStyles.None, CultureInfo.InvariantCulture, out var position) ? position : throw MatrixException.InvalidParam("Unknown 'from' token")
            : null;
        var limit = Math.Clamp(QueryParameters.NonNegativeInt(context, "limit", DefaultLimit), 1, MaxLimit);
        var only = QueryParameters.Optional(context, "only");
        var page = await notifications.GetAsync(requester.UserId, from, limit, onlyHighlights: only == "highlight");
        var body = new System.Text.Json.Nodes.JsonObject { ["notifications"] = page.Notifications };
        if (page.NextToken is not null) body["next_token"] = page.NextToken;
        return Results.Json(body);
    }
}

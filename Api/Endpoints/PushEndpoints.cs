using System.Globalization;
using System.Text.Json.Nodes;
using Homeserver.Api.Http;
using Homeserver.Errors;
using Homeserver.Pushers;
using Homeserver.PushRules;

namespace Homeserver.Api.Endpoints;

/// <summary>
/// Push notifications (spec: Client-Server API, "Push notifications"): the user's pushers (<c>GET /pushers</c>,
/// <c>POST /pushers/set</c>, through the user's <see cref="IPushersGrain"/>, which also delivers to their gateways) and
/// <c>GET /notifications</c> with <c>from</c>, <c>limit</c> and <c>only=highlight</c>, served on this process from the
/// user's push rules (<see cref="NotificationList"/>).
/// </summary>
public static class PushEndpoints
{
    private const int DefaultLimit = 50, MaxLimit = 1_000;

    public static IEndpointRouteBuilder MapPushEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapGet($"{RoomEndpoints.Prefix}/notifications", GetNotificationsAsync);
        app.MapGet($"{RoomEndpoints.Prefix}/pushers", GetPushersAsync);
        app.MapPost($"{RoomEndpoints.Prefix}/pushers/set", SetPusherAsync);
        return app;
    }

    private static async Task<IResult> GetNotificationsAsync(HttpContext context, NotificationList notifications)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        long? from = QueryParameters.Optional(context, "from") is { } token
            ? long.TryParse(token, NumberStyles.None, CultureInfo.InvariantCulture, out var position) ? position : throw MatrixException.InvalidParam("Unknown 'from' token")
            : null;
        var limit = Math.Clamp(QueryParameters.NonNegativeInt(context, "limit", DefaultLimit), 1, MaxLimit);
        var page = await notifications.GetAsync(requester.UserId, from, limit, onlyHighlights: QueryParameters.Optional(context, "only") == "highlight");
        var body = new JsonObject { ["notifications"] = page.Notifications };
        if (page.NextToken is not null) body["next_token"] = page.NextToken;
        return Results.Json(body);
    }

    private static async Task<IResult> GetPushersAsync(HttpContext context, IGrainFactory grains)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var pushers = new JsonArray();
        foreach (var p in await grains.GetGrain<IPushersGrain>(requester.UserId).ListAsync())
            pushers.Add(new JsonObject
            {
                ["kind"] = p.Kind,
                ["app_id"] = p.AppId,
                ["pushkey"] = p.PushKey,
                ["app_display_name"] = p.AppDisplayName,
                ["device_display_name"] = p.DeviceDisplayName,
                ["profile_tag"] = p.ProfileTag,
                ["lang"] = p.Lang,
                ["data"] = JsonNode.Parse(p.DataJson),
            });
        return Results.Json(new JsonObject { ["pushers"] = pushers });
    }

    private static async Task<IResult> SetPusherAsync(HttpContext context, IGrainFactory grains)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        if (requester.IsGuest) throw new MatrixException(ErrorCodes.GuestAccessForbidden, "Guests cannot set pushers", 403);
        var body = JsonBody.Object(context.Request);
        if (!body.TryGetPropertyValue("kind", out var kindNode)) throw MatrixException.MissingParam("Missing 'kind'");
        var kind = kindNode switch
        {
            null => null,
            JsonValue v when v.TryGetValue<string>(out var s) => s,
            _ => throw MatrixException.BadJson("'kind' must be a string or null"),
        };
        var data = body["data"];
        if (data is not (null or JsonObject)) throw MatrixException.BadJson("'data' must be an object");
        await grains.GetGrain<IPushersGrain>(requester.UserId).SetAsync(new PusherSettings(
            kind,
            JsonBody.RequireString(body, "app_id"),
            JsonBody.RequireString(body, "pushkey"),
            JsonBody.OptionalString(body, "app_display_name"),
            JsonBody.OptionalString(body, "device_display_name"),
            JsonBody.OptionalString(body, "profile_tag"),
            JsonBody.OptionalString(body, "lang"),
            data?.ToJsonString(),
            JsonBody.OptionalBool(body, "append"),
            requester.DeviceId));
        return Results.Json(new JsonObject());
    }
}

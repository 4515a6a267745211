using System.Text.Json.Nodes;
using Homeserver.Accounts;
using Homeserver.Api.Http;
using Homeserver.Errors;
using Homeserver.Matrix;
using Homeserver.Streams;
using Microsoft.Extensions.Options;

namespace Homeserver.Api.Endpoints;

/// <summary>
/// Server administration: the spec's (Client-Server API, "Server Administration": whois, which Synapse also serves
/// from its admin module) and the homeserver's own operator calls under <c>/_homeserver/admin/v1</c> (Synapse's admin
/// API lives under <c>/_synapse/admin</c>; what has no Synapse equivalent gets a prefix of its own). Only the users
/// named in <c>Homeserver:AdminUsers</c> and accounts with the admin flag may call them (whois also about oneself).
/// </summary>
public static class AdminEndpoints
{
    public const string Prefix = "/_homeserver/admin/v1";

    public static IEndpointRouteBuilder MapAdminEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapGet($"{RoomEndpoints.Prefix}/admin/whois/{{userId}}", GetWhoIs);
        app.MapGet($"{Prefix}/event_writers", GetEventWriters);
        app.MapPut($"{Prefix}/event_writers", SetEventWriters);
        return app;
    }

    /// <summary>GET whois: every device of the user with the connections its clients made (ip, user agent, last
    /// seen), as Synapse answers it: one session per device. Served at the spec's path and at Synapse's admin path
    /// (<see cref="SynapseAdminUserEndpoints"/>).</summary>
    internal static async Task<IResult> GetWhoIs(HttpContext context, string userId, DeviceConnections connections)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        userId = RoomWrites.Segment(userId);
        if (!Identifiers.IsValidUserId(userId)) throw MatrixException.InvalidParam($"Invalid user id '{Quote.Short(userId)}'");
        if (userId != requester.UserId && !await RequestAuth.IsAdminAsync(context, requester.UserId))
            throw MatrixException.Forbidden("You are not a server admin");
        SynapseAdminUserEndpoints.LocalUserId(context, userId, "Can only whois a local user");
        var devices = await connections.WhoisAsync(userId) ?? throw MatrixException.NotFound("Unknown user");
        var body = new JsonObject();
        foreach (var device in devices)
            body[device.Device.DeviceId] = new JsonObject
            {
                ["sessions"] = new JsonArray(new JsonObject
                {
                    ["connections"] = new JsonArray(device.Connections.Select(c => (JsonNode)new JsonObject
                    {
                        ["ip"] = c.Ip,
                        ["last_seen"] = c.LastSeen,
                        ["user_agent"] = c.UserAgent,
                    }).ToArray()),
                }),
            };
        return Results.Json(new JsonObject { ["user_id"] = userId, ["devices"] = body });
    }

    /// <summary>GET: the <c>events</c> shard map.</summary>
    private static async Task<IResult> GetEventWriters(HttpContext context, IGrainFactory grains)
    {
        await RequestAuth.RequireAdminAsync(context);
        return Results.Json(ToJson(await grains.GetGrain<IEventShardMapGrain>(0).GetAsync()));
    }

    /// <summary>PUT <c>{"writers": n}</c>: reshards the <c>events</c> stream live and answers the new map.</summary>
    private static async Task<IResult> SetEventWriters(HttpContext context, IGrainFactory grains,
        EventShards shards)
    {
        await RequestAuth.RequireAdminAsync(context);
        var body = JsonBody.Object(context.Request);
        if (body["writers"] is not JsonValue v || !v.TryGetValue<int>(out var writers) || writers < 1 || writers > EventShardMapGrain.MaxWriters)
            throw MatrixException.InvalidParam($"'writers' must be an integer from 1 to {EventShardMapGrain.MaxWriters}");
        var map = await grains.GetGrain<IEventShardMapGrain>(0).ReshardAsync(writers);
        await shards.RefreshAsync();
        return Results.Json(ToJson(map));
    }


    private static JsonObject ToJson(EventShardMap map) => new()
    {
        ["writers"] = map.Current.Writers,
        ["generation"] = map.Generation,
        ["resharding_to"] = map.ReshardingTo,
        ["generations"] = new JsonArray(map.Generations.Select(g => (JsonNode)new JsonObject
        {
            ["writers"] = g.Writers,
            ["after_position"] = g.After,
        }).ToArray()),
    };
}

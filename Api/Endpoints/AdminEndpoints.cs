using System.Text.Json.Nodes;
using Homeserver.Accounts;
using Homeserver.Api.Http;
using Homeserver.Errors;
using Homeserver.Hosting;
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
        app.MapGet($"{Prefix}/replication", GetReplication);
        app.MapGet($"{Prefix}/cluster", GetCluster);
        app.MapPost($"{Prefix}/stream_writers/{{stream}}/{{writer}}/move", MoveStreamWriter);
        app.MapDelete($"{Prefix}/stream_writers/{{stream}}/{{writer}}/pin", UnpinStreamWriter);
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

    /// <summary>GET: every writer's silo, epoch and position; every reader's (one per silo and per front end without a
    /// silo) position and lag behind each writer, and its caches' counters.</summary>
    private static async Task<IResult> GetReplication(HttpContext context, ReplicationStatusReader replication)
    {
        await RequestAuth.RequireAdminAsync(context);
        var status = await replication.GetAsync();
        return Results.Json(new JsonObject
        {
            ["writers"] = new JsonArray(status.Writers.Select(w => (JsonNode)new JsonObject
            {
                ["stream"] = w.Stream,
                ["writer"] = w.Writer,
                ["silo"] = w.Silo,
                ["epoch"] = w.Epoch,
                ["position"] = w.Position,
                ["shard_generation"] = w.ShardGeneration,
                ["pinned_to"] = status.Pins?.GetValueOrDefault(StreamNames.WriterKey(w.Stream, w.Writer)),
            }).ToArray()),
            ["readers"] = new JsonArray(status.Readers.Select(r => (JsonNode)new JsonObject
            {
                ["name"] = r.Silo,
                ["streams"] = new JsonObject(status.Writers.GroupBy(w => w.Stream).Select(stream => KeyValuePair.Create(stream.Key,
                    (JsonNode?)new JsonObject(stream.Select(w => KeyValuePair.Create(w.Writer.ToString(System.Globalization.CultureInfo.InvariantCulture),
                        (JsonNode?)new JsonObject
                        {
                            ["position"] = r.Positions.TryGetValue(w.Stream, out var p) && p.TryGetValue(w.Writer, out var at) ? at : null,
                            ["lag"] = r.LagBehind(w),
                            ["lag_ms"] = r.LagSeconds?.GetValueOrDefault(w.Stream)?.GetValueOrDefault(w.Writer) is { } seconds
                                ? Math.Round(seconds * 1000, 1) : null,
                        })))))),
                ["caches"] = new JsonArray(r.Caches.Select(c => (JsonNode)new JsonObject
                {
                    ["name"] = c.Name,
                    ["size"] = c.Count,
                    ["hits"] = c.Hits,
                    ["misses"] = c.Misses,
                    ["invalidations"] = c.Invalidations,
                }).ToArray()),
            }).ToArray()),
        });
    }

    /// <summary>GET: the silos (from Orleans' membership) with their status and role, and the front ends serving HTTP.</summary>
    private static async Task<IResult> GetCluster(HttpContext context, ClusterStatusReader cluster)
    {
        await RequestAuth.RequireAdminAsync(context);
        var status = await cluster.GetAsync();
        var now = DateTime.UtcNow;
        return Results.Json(new JsonObject
        {
            ["silos"] = new JsonArray(status.Silos.Select(s => (JsonNode)new JsonObject
            {
                ["address"] = s.Address.ToString(),
                ["endpoint"] = s.Address.Endpoint.ToString(),
                ["name"] = s.Name,
                ["host"] = s.Host,
                ["status"] = s.Status.ToString(),
                ["role"] = s.Role,
                ["gateway_port"] = s.GatewayPort,
                ["started_at"] = s.StartedAt.ToString("O"),
                ["last_alive_at"] = s.IAmAliveAt.ToString("O"),
            }).ToArray()),
            ["front_ends"] = new JsonArray(status.FrontEnds.Select(f => (JsonNode)new JsonObject
            {
                ["name"] = f.Name,
                ["role"] = f.Role,
                ["silo"] = f.Silo,
                ["host"] = f.Host,
                ["process_id"] = f.ProcessId,
                ["urls"] = new JsonArray(f.Urls.Select(u => (JsonNode)u).ToArray()),
                ["status"] = f.Up(now) ? "up" : "missing",
                ["started_at"] = f.StartedAt.ToString("O"),
                ["last_seen_at"] = f.SeenAt.ToString("O"),
            }).ToArray()),
        });
    }

    /// <summary>DELETE: removes the writer's pin, so that rebalancing sends it back to its hash home; answers where it
    /// was pinned (null when it was not).</summary>
    private static async Task<IResult> UnpinStreamWriter(HttpContext context, string stream, string writer, StreamWriterMover mover)
    {
        await RequestAuth.RequireAdminAsync(context);
        var index = WriterIndex(writer);
        var was = await mover.UnpinAsync(stream, index);
        return Results.Json(new JsonObject { ["stream"] = stream, ["writer"] = index, ["unpinned_from"] = was });
    }

    private static int WriterIndex(string writer) =>
        int.TryParse(writer, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var index)
            ? index
            : throw MatrixException.InvalidParam($"The writer must be a number, not '{Quote.Short(writer)}'");

    /// <summary>POST <c>{"silo": "&lt;address, host:port or name&gt;"}</c>: moves the stream writer there and pins it there
    /// (placement and rebalancing keep it on that silo while it is active).</summary>
    private static async Task<IResult> MoveStreamWriter(HttpContext context, string stream, string writer, StreamWriterMover mover)
    {
        await RequestAuth.RequireAdminAsync(context);
        var index = WriterIndex(writer);
        var body = JsonBody.Object(context.Request);
        if (body["silo"] is not JsonValue v || !v.TryGetValue<string>(out var silo) || silo.Length == 0)
            throw MatrixException.MissingParam("'silo' (a silo's address, host:port or name) is required");
        var (before, after) = await mover.MoveAsync(stream, index, silo);
        return Results.Json(new JsonObject
        {
            ["stream"] = after.Stream,
            ["writer"] = after.Writer,
            ["from"] = before.Silo,
            ["silo"] = after.Silo,
            ["epoch"] = after.Epoch,
            ["position"] = after.Position,
        });
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

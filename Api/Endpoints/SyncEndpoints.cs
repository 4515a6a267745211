using System.Text.Json.Nodes;
using Homeserver.Api.Http;
using Homeserver.Errors;
using Homeserver.Matrix;
using Homeserver.Sync;

namespace Homeserver.Api.Endpoints;

/// <summary>Client-Server API: /sync and filters (spec "Syncing" and "Filtering").</summary>
public static class SyncEndpoints
{
    public static readonly TimeSpan MaxTimeout = TimeSpan.FromMinutes(3);

    public static IEndpointRouteBuilder MapSyncEndpoints(this IEndpointRouteBuilder app)
    {
        var v3 = app.MapGroup(RoomEndpoints.Prefix);
        v3.MapGet("/sync", Sync);
        v3.MapPost("/user/{userId}/filter", DefineFilter);
        v3.MapGet("/user/{userId}/filter/{filterId}", GetFilter);
        return app;
    }

    /// <summary>GET /sync</summary>
    private static async Task<IResult> Sync(HttpContext context, SyncHandler handler, IHostApplicationLifetime lifetime)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var query = context.Request.Query;
        var timeout = QueryParameters.Timeout(context, MaxTimeout);
        var fullState = QueryParameters.Boolean(context, "full_state");
        var setPresence = query["set_presence"].ToString();
        if (setPresence is not ("" or "online" or "offline" or "unavailable"))
            throw MatrixException.InvalidParam("'set_presence' must be online, offline or unavailable");
        var since = query["since"].ToString();
        var filter = query["filter"].ToString();
        // A stopping server ends its long-polls at once (what changed so far, usually nothing), so that its clients'
        // next long-poll lands on another front end instead of holding the shutdown for the whole timeout.
        var response = await handler.SyncAsync(requester,
            new SyncRequest(since.Length == 0 ? null : since, timeout, filter.Length == 0 ? null : filter, fullState, setPresence.Length == 0 ? null : setPresence),
            context.RequestAborted, stopWaiting: lifetime.ApplicationStopping);
        return new JsonBodyResult(response);
    }

    /// <summary>
    /// A response written as UTF-8 straight into the body (a sync from scratch of a big account is tens of megabytes,
    /// twice that as one UTF-16 string on the large object heap), sent as it is written: the body is flushed every
    /// <see cref="FlushBytes"/> at the boundary of a room (or of any member of the top three levels), and each flush
    /// waits for the connection to take it. Written whole and flushed once, a 23 MB response sat in Kestrel's pinned
    /// memory pool until the end, and the pool kept those blocks afterwards (docs/benchmarks.md, "Issue 13, eighth
    /// session: memory").
    /// </summary>
    private sealed class JsonBodyResult(JsonNode body) : IResult
    {
        private const int FlushBytes = 64 * 1024;
        // Levels whose members are written one by one: the response, "rooms", "join"; a room is written whole.
        private const int ExpandedLevels = 3;

        public async Task ExecuteAsync(HttpContext context)
        {
            context.Response.ContentType = "application/json";
            var pipe = context.Response.BodyWriter;
            long flushed = 0;
            await using (var writer = new System.Text.Json.Utf8JsonWriter(pipe))
            {
                await WriteAsync(body, 0);
                writer.Flush();

                async ValueTask WriteAsync(JsonNode? node, int level)
                {
                    if (node is JsonObject obj && level < ExpandedLevels)
                    {
                        writer.WriteStartObject();
                        foreach (var (name, value) in obj)
                        {
                            writer.WritePropertyName(name);
                            await WriteAsync(value, level + 1);
                        }
                        writer.WriteEndObject();
                        return;
                    }
                    if (node is null) writer.WriteNullValue();
                    else node.WriteTo(writer);
                    if (writer.BytesCommitted + writer.BytesPending - flushed < FlushBytes) return;
                    writer.Flush();
                    flushed = writer.BytesCommitted;
                    await pipe.FlushAsync(context.RequestAborted);
                }
            }
            await pipe.FlushAsync(context.RequestAborted);
        }
    }

    /// <summary>POST /user/{userId}/filter: stored exactly as sent.</summary>
    private static async Task<IResult> DefineFilter(HttpContext context, string userId, FilterStore filters)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        userId = RoomWrites.Segment(userId);
        if (userId != requester.UserId) throw MatrixException.Forbidden("Cannot create filters for other users");
        var body = JsonBody.Object(context.Request);
        var text = JsonBody.Text(context.Request)!;
        SyncFilter.Parse(body); // reject what /sync could not use
        var id = await filters.CreateAsync(userId, text);
        return Results.Json(new { filter_id = id });
    }

    /// <summary>GET /user/{userId}/filter/{filterId}</summary>
    private static async Task<IResult> GetFilter(HttpContext context, string userId, string filterId, FilterStore filters)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        userId = RoomWrites.Segment(userId);
        if (userId != requester.UserId) throw MatrixException.Forbidden("Cannot read filters of other users");
        var json = await filters.GetAsync(userId, filterId) ?? throw MatrixException.NotFound("No such filter");
        return Results.Content(json, "application/json");
    }
}

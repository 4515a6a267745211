using System.Globalization;
using System.Text.Json.Nodes;
using Homeserver.Admin;
using Homeserver.Api.Http;
using Homeserver.Errors;
using Homeserver.Matrix;
using Homeserver.Rooms;
using Microsoft.Extensions.Options;

namespace Homeserver.Api.Endpoints;

/// <summary>
/// The rooms half of Synapse's admin API (<c>synapse/rest/admin/rooms.py</c>, <c>event_reports.py</c>; documented in
/// Synapse's <c>docs/admin_api/rooms.md</c> and <c>event_reports.md</c>), with its paths, parameters, bodies and
/// errors, so that tools written for Synapse (synapse-admin) work: the room list and details, members, state, blocking,
/// the background room deletion with its status, and the event reports. Every call needs a server admin
/// (<see cref="RequestAuth.RequireAdminAsync"/>: 401 without a token, 403 <c>M_FORBIDDEN</c> for anyone else).
/// </summary>
public static class SynapseAdminRoomEndpoints
{
    public const string V1 = "/_synapse/admin/v1";
    public const string V2 = "/_synapse/admin/v2";

    public static IEndpointRouteBuilder MapSynapseAdminRoomEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapGet($"{V1}/rooms", ListRooms);
        app.MapGet($"{V1}/rooms/{{roomId}}", GetRoom);
        app.MapGet($"{V1}/rooms/{{roomId}}/members", GetRoomMembers);
        app.MapGet($"{V1}/rooms/{{roomId}}/state", GetRoomState);
        app.MapGet($"{V1}/rooms/{{roomId}}/block", GetRoomBlock);
        app.MapPut($"{V1}/rooms/{{roomId}}/block", SetRoomBlock);
        app.MapDelete($"{V1}/rooms/{{roomId}}", DeleteRoomAndWait);
        app.MapDelete($"{V2}/rooms/{{roomId}}", DeleteRoom);
        app.MapGet($"{V2}/rooms/{{roomId}}/delete_status", GetDeleteStatusByRoom);
        app.MapGet($"{V2}/rooms/delete_status/{{deleteId}}", GetDeleteStatus);
        app.MapGet($"{V1}/event_reports", ListEventReports);
        app.MapGet($"{V1}/event_reports/{{reportId}}", GetEventReport);
        app.MapDelete($"{V1}/event_reports/{{reportId}}", DeleteEventReport);
        return app;
    }

    /// <summary>GET rooms: <c>from</c>, <c>limit</c> (100), <c>order_by</c> (name), <c>dir</c> (f), <c>search_term</c>,
    /// <c>public_rooms</c>, <c>empty_rooms</c>; answers <c>rooms</c>, <c>offset</c>, <c>total_rooms</c> and
    /// <c>next_batch</c> / <c>prev_batch</c> where there is more.</summary>
    private static async Task<IResult> ListRooms(HttpContext context, RoomAdminStore rooms)
    {
        await RequestAuth.RequireAdminAsync(context);
        var from = QueryParameters.NonNegativeInt(context, "from", 0);
        var limit = QueryParameters.NonNegativeInt(context, "limit", 100);
        var orderBy = QueryParameters.Optional(context, "order_by") ?? "name";
        if (!RoomSortOrder.Orders.ContainsKey(orderBy))
            throw MatrixException.InvalidParam($"Query parameter \"order_by\" must be one of [{string.Join(", ", RoomSortOrder.Orders.Keys.Select(k => $"\"{k}\""))}]");
        if (context.Request.Query.TryGetValue("search_term", out var term) && term.ToString() == "")
            throw MatrixException.InvalidParam("search_term cannot be an empty string");
        var query = new RoomListQuery(from, limit, orderBy, Backwards(context, fallback: false),
            QueryParameters.Optional(context, "search_term"), OptionalBoolean(context, "public_rooms"), OptionalBoolean(context, "empty_rooms"));
        var (list, total) = await rooms.ListAsync(query);
        var body = new JsonObject
        {
            ["rooms"] = new JsonArray(list.Select(r => (JsonNode)r).ToArray()),
            ["offset"] = from,
            ["total_rooms"] = total,
        };
        if ((long)from + limit < total) body["next_batch"] = from + limit;
        if (from > 0) body["prev_batch"] = from > limit ? from - limit : 0;
        return Results.Json(body);
    }

    private static async Task<IResult> GetRoom(HttpContext context, string roomId, RoomAdminStore rooms)
    {
        await RequestAuth.RequireAdminAsync(context);
        var room = await rooms.GetAsync(RoomId(roomId)) ?? throw MatrixException.NotFound("Room not found");
        return Results.Json(room);
    }

    private static async Task<IResult> GetRoomMembers(HttpContext context, string roomId, RoomAdminStore rooms)
    {
        await RequestAuth.RequireAdminAsync(context);
        var members = await rooms.GetJoinedMembersAsync(RoomId(roomId)) ?? throw MatrixException.NotFound("Room not found");
        return Results.Json(new JsonObject
        {
            ["members"] = new JsonArray(members.Select(m => (JsonNode)JsonValue.Create(m)).ToArray()),
            ["total"] = members.Count,
        });
    }

    /// <summary>GET state: the room's current state as client events; <c>type</c> keeps one event type.</summary>
    private static async Task<IResult> GetRoomState(HttpContext context, string roomId, RoomEventStore store)
    {
        await RequestAuth.RequireAdminAsync(context);
        var state = await store.GetCurrentStateAsync(RoomId(roomId));
        if (!state.Exists) throw MatrixException.NotFound("Room not found");
        var type = QueryParameters.Optional(context, "type");
        var events = type is null ? state.Events : state.Events.Where(e => e.Type == type).ToList();
        return Results.Json(new JsonObject { ["state"] = RoomEventFormat.ToClientArray(events) });
    }

    private static async Task<IResult> GetRoomBlock(HttpContext context, string roomId, BlockedRooms blocked)
    {
        await RequestAuth.RequireAdminAsync(context);
        var by = await blocked.BlockedByAsync(LegalRoomId(roomId));
        return Results.Json(by is null ? new JsonObject { ["block"] = false } : new JsonObject { ["block"] = true, ["user_id"] = by });
    }

    /// <summary>PUT block <c>{"block": bool}</c>: a room can be blocked before this server knows it.</summary>
    private static async Task<IResult> SetRoomBlock(HttpContext context, string roomId, BlockedRooms blocked, Streams.StreamNotifier notifier)
    {
        var admin = await RequestAuth.RequireAdminAsync(context);
        var body = JsonBody.Object(context.Request);
        roomId = LegalRoomId(roomId);
        if (body["block"] is null) throw MatrixException.MissingParam("Missing params: ['block']");
        var block = Boolean(body, "block", false, "Param 'block' must be a boolean.");
        var position = block ? await blocked.BlockAsync(roomId, admin.UserId) : await blocked.UnblockAsync(roomId);
        await Caches.CacheInvalidator.WaitAppliedAsync(notifier, position, context.RequestAborted);
        return Results.Json(new JsonObject { ["block"] = block });
    }

    /// <summary>DELETE v2 <c>{"block", "purge" (true), "force_purge", "message", "new_room_user_id", "room_name"}</c>:
    /// answers <c>{"delete_id"}</c> at once; the deletion runs in the room's <see cref="IRoomDeletionGrain"/>.</summary>
    private static async Task<IResult> DeleteRoom(HttpContext context, string roomId, IGrainFactory grains, IOptions<HomeserverOptions> options)
    {
        var (_, deleteId) = await StartDeletionAsync(context, roomId, grains, options);
        return Results.Json(new JsonObject { ["delete_id"] = deleteId });
    }

    /// <summary>DELETE v1 (Synapse's older, synchronous form, still used by tools): the same deletion, answered with its
    /// <c>shutdown_room</c> object once it has finished; a failed one answers its error (400).</summary>
    private static async Task<IResult> DeleteRoomAndWait(HttpContext context, string roomId, IGrainFactory grains, IOptions<HomeserverOptions> options)
    {
        var (grain, deleteId) = await StartDeletionAsync(context, roomId, grains, options);
        while (true)
        {
            var deletion = (await grain.GetStatusAsync()).First(d => d.DeleteId == deleteId);
            if (deletion.Status == RoomDeletionStore.Complete) return Results.Text(deletion.ShutdownRoomJson, "application/json");
            if (deletion.Status == RoomDeletionStore.Failed) throw new MatrixException(ErrorCodes.Unknown, deletion.Error ?? "Room deletion failed", 400);
            await Task.Delay(TimeSpan.FromMilliseconds(100), context.RequestAborted);
        }
    }

    private static async Task<(IRoomDeletionGrain Grain, string DeleteId)> StartDeletionAsync(HttpContext context, string roomId,
        IGrainFactory grains, IOptions<HomeserverOptions> options)
    {
        var admin = await RequestAuth.RequireAdminAsync(context);
        var body = JsonBody.Object(context.Request);
        var block = Boolean(body, "block", false, "Param 'block' must be a boolean, if given");
        var purge = Boolean(body, "purge", true, "Param 'purge' must be a boolean, if given");
        var forcePurge = Boolean(body, "force_purge", false, "Param 'force_purge' must be a boolean, if given");
        roomId = LegalRoomId(roomId);
        var newRoomUserId = JsonBody.OptionalString(body, "new_room_user_id");
        if (newRoomUserId is not null && (!Identifiers.IsValidUserId(newRoomUserId) || Identifiers.ServerNameOf(newRoomUserId) != options.Value.ServerName))
            throw new MatrixException(ErrorCodes.Unknown, $"User must be our own: {Quote.Short(newRoomUserId)}", 400);
        var request = new RoomDeletionRequest(admin.UserId, block, purge, forcePurge,
            NonEmpty(JsonBody.OptionalString(body, "message")), newRoomUserId, NonEmpty(JsonBody.OptionalString(body, "room_name")));
        var grain = grains.GetGrain<IRoomDeletionGrain>(roomId);
        return (grain, await grain.StartAsync(request));
    }

    private static async Task<IResult> GetDeleteStatusByRoom(HttpContext context, string roomId, IGrainFactory grains)
    {
        await RequestAuth.RequireAdminAsync(context);
        roomId = LegalRoomId(roomId);
        var deletions = await grains.GetGrain<IRoomDeletionGrain>(roomId).GetStatusAsync();
        if (deletions.Length == 0) throw MatrixException.NotFound($"No delete task for room_id '{roomId}' found");
        return Results.Json(new JsonObject { ["results"] = new JsonArray(deletions.Select(d => (JsonNode)ToJson(d)).ToArray()) });
    }

    private static async Task<IResult> GetDeleteStatus(HttpContext context, string deleteId, RoomDeletionStore deletions, IGrainFactory grains)
    {
        await RequestAuth.RequireAdminAsync(context);
        var notFound = MatrixException.NotFound($"delete id '{Quote.Short(deleteId)}' not found");
        var roomId = await deletions.RoomOfAsync(deleteId) ?? throw notFound;
        var deletion = (await grains.GetGrain<IRoomDeletionGrain>(roomId).GetStatusAsync()).FirstOrDefault(d => d.DeleteId == deleteId)
                       ?? throw notFound;
        return Results.Json(ToJson(deletion));
    }

    /// <summary>GET event_reports: <c>from</c>, <c>limit</c> (100), <c>dir</c> (b: newest first), <c>user_id</c>,
    /// <c>room_id</c>, <c>event_sender_user_id</c>; answers <c>event_reports</c>, <c>total</c> and <c>next_token</c>.</summary>
    private static async Task<IResult> ListEventReports(HttpContext context, EventReportStore reports)
    {
        await RequestAuth.RequireAdminAsync(context);
        var from = PositiveParameter(context, "from", 0, "The start parameter must be a positive integer.");
        var limit = PositiveParameter(context, "limit", 100, "The limit parameter must be a positive integer.");
        var query = new EventReportQuery(from, limit, !Backwards(context, fallback: true), QueryParameters.Optional(context, "user_id"),
            QueryParameters.Optional(context, "room_id"), QueryParameters.Optional(context, "event_sender_user_id"));
        var (list, total) = await reports.ListAsync(query);
        var body = new JsonObject
        {
            ["event_reports"] = new JsonArray(list.Select(r => (JsonNode)r).ToArray()),
            ["total"] = total,
        };
        if ((long)from + limit < total) body["next_token"] = from + list.Count;
        return Results.Json(body);
    }

    private static async Task<IResult> GetEventReport(HttpContext context, string reportId, EventReportStore reports)
    {
        await RequestAuth.RequireAdminAsync(context);
        var report = await reports.GetAsync(ReportId(reportId)) ?? throw MatrixException.NotFound("Event report not found");
        return Results.Json(report);
    }

    private static async Task<IResult> DeleteEventReport(HttpContext context, string reportId, EventReportStore reports)
    {
        await RequestAuth.RequireAdminAsync(context);
        if (!await reports.DeleteAsync(ReportId(reportId))) throw MatrixException.NotFound("Event report not found");
        return Results.Json(new JsonObject());
    }

    private static JsonObject ToJson(RoomDeletionStatus deletion)
    {
        var body = new JsonObject
        {
            ["delete_id"] = deletion.DeleteId,
            ["room_id"] = deletion.RoomId,
            ["status"] = deletion.Status,
            ["shutdown_room"] = JsonNode.Parse(deletion.ShutdownRoomJson),
        };
        if (deletion.Error is not null) body["error"] = deletion.Error;
        return body;
    }

    /// <summary>A room id as the admin API takes it: 400 <c>M_INVALID_PARAM</c> for what is not one.</summary>
    private static string RoomId(string raw) => RoomWrites.RoomId(raw);

    /// <summary>Synapse's words for the calls that may name a room this server does not know (block, delete).</summary>
    private static string LegalRoomId(string raw)
    {
        var roomId = RoomWrites.Segment(raw);
        return Identifiers.IsValidRoomId(roomId)
            ? roomId
            : throw new MatrixException(ErrorCodes.Unknown, $"{Quote.Short(roomId)} is not a legal room ID", 400);
    }

    private static long ReportId(string raw)
    {
        const string message = "The report_id parameter must be a string representing a positive integer.";
        return long.TryParse(raw, NumberStyles.None, CultureInfo.InvariantCulture, out var id) ? id : throw MatrixException.InvalidParam(message);
    }

    private static int PositiveParameter(HttpContext context, string name, int fallback, string message)
    {
        var text = QueryParameters.Optional(context, name);
        if (text is null) return fallback;
        if (!int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value))
            throw MatrixException.InvalidParam($"Query parameter \"{name}\" must be an integer");
        return value >= 0 ? value : throw MatrixException.InvalidParam(message);
    }

    /// <summary><c>dir</c>: <c>b</c> or <c>f</c> (400 <c>M_INVALID_PARAM</c> otherwise).</summary>
    private static bool Backwards(HttpContext context, bool fallback) => QueryParameters.Optional(context, "dir") switch
    {
        null => fallback,
        "b" => true,
        "f" => false,
        _ => throw MatrixException.InvalidParam("Query parameter \"dir\" must be one of [\"b\", \"f\"]"),
    };

    private static bool? OptionalBoolean(HttpContext context, string name) =>
        QueryParameters.Optional(context, name) is null ? null : QueryParameters.Boolean(context, name);

    private static bool Boolean(JsonObject body, string name, bool fallback, string message) => body[name] switch
    {
        null => fallback,
        JsonValue v when v.TryGetValue<bool>(out var b) => b,
        _ => throw MatrixException.BadJson(message),
    };

    private static string? NonEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;
}

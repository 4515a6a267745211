using System.Globalization;
using System.Text.Json.Nodes;
using Homeserver.Api.Http;
using Homeserver.Errors;
using Homeserver.Matrix;
using Homeserver.RoomDirectory;
using Homeserver.Rooms;
using Homeserver.Streams;
using Microsoft.Extensions.Options;

namespace Homeserver.Api.Endpoints;

/// <summary>Room aliases and the room directory (spec: Client-Server API, "Room aliases" and "Listing rooms").</summary>
public static class DirectoryEndpoints
{
    private const string Prefix = "/_matrix/client/v3";

    public static IEndpointRouteBuilder MapDirectoryEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPut($"{Prefix}/directory/room/{{roomAlias}}", SetRoomAlias);
        app.MapGet($"{Prefix}/directory/room/{{roomAlias}}", GetRoomIdByAlias);
        app.MapDelete($"{Prefix}/directory/room/{{roomAlias}}", DeleteRoomAlias);
        app.MapGet($"{Prefix}/rooms/{{roomId}}/aliases", GetLocalAliases);
        app.MapGet($"{Prefix}/directory/list/room/{{roomId}}", GetRoomVisibilityOnDirectory);
        app.MapPut($"{Prefix}/directory/list/room/{{roomId}}", SetRoomVisibilityOnDirectory);
        app.MapGet($"{Prefix}/publicRooms", GetPublicRooms);
        app.MapPost($"{Prefix}/publicRooms", QueryPublicRooms);
        return app;
    }

    private static async Task<IResult> SetRoomAlias(HttpContext context, string roomAlias, IGrainFactory grains, IOptions<HomeserverOptions> options)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var alias = Alias(roomAlias);
        if (Identifiers.ServerNameOf(alias) != options.Value.ServerName)
            throw new MatrixException(ErrorCodes.Unknown, "Room alias must be local", 400);
        var body = JsonBody.Object(context.Request);
        var roomId = JsonBody.RequireString(body, "room_id");
        if (!Identifiers.IsValidRoomId(roomId)) throw MatrixException.InvalidParam($"Invalid room id '{Quote.Short(roomId)}'");
        await grains.GetGrain<IRoomDirectoryGrain>(roomId).CreateAliasAsync(alias, requester.UserId);
        return Results.Json(new JsonObject());
    }

    // Resolving an alias needs no access token (spec: no authentication for this endpoint).
    private static async Task<IResult> GetRoomIdByAlias(string roomAlias, AliasStore aliases, IOptions<HomeserverOptions> options)
    {
        var alias = Alias(roomAlias);
        var found = await aliases.GetAsync(alias) ?? throw MatrixException.NotFound($"Room alias {alias} not found");
        return Results.Json(new JsonObject
        {
            ["room_id"] = found.RoomId,
            ["servers"] = new JsonArray(options.Value.ServerName),
        });
    }

    private static async Task<IResult> DeleteRoomAlias(HttpContext context, string roomAlias, AliasStore aliases, IGrainFactory grains,
        StreamNotifier notifier, IOptions<HomeserverOptions> options)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var alias = Alias(roomAlias);
        if (Identifiers.ServerNameOf(alias) != options.Value.ServerName)
            throw new MatrixException(ErrorCodes.Unknown, "Cannot delete non-local aliases", 400);
        var found = await aliases.GetAsync(alias) ?? throw MatrixException.NotFound($"Room alias {alias} not found");
        var canonical = await grains.GetGrain<IRoomDirectoryGrain>(found.RoomId).DeleteAliasAsync(alias, requester.UserId);
        await RoomWrites.WaitAsync(notifier, canonical, context.RequestAborted);
        return Results.Json(new JsonObject());
    }

    private static async Task<IResult> GetLocalAliases(HttpContext context, string roomId, AliasStore aliases, RoomVisibility visibility)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        roomId = RoomWrites.RoomId(roomId);
        await visibility.RequireReadableAsync(roomId, requester.UserId);
        var list = await aliases.GetAliasesForRoomAsync(roomId);
        return Results.Json(new JsonObject { ["aliases"] = new JsonArray(list.Select(a => (JsonNode)JsonValue.Create(a)!).ToArray()) });
    }

    private static async Task<IResult> GetRoomVisibilityOnDirectory(string roomId, PublicRoomStore publicRooms)
    {
        roomId = RoomWrites.RoomId(roomId);
        var published = await publicRooms.IsPublishedAsync(roomId) ?? throw MatrixException.NotFound("Unknown room");
        return Results.Json(new JsonObject { ["visibility"] = published ? "public" : "private" });
    }

    private static async Task<IResult> SetRoomVisibilityOnDirectory(HttpContext context, string roomId, IGrainFactory grains)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        roomId = RoomWrites.RoomId(roomId);
        var body = JsonBody.Object(context.Request, allowEmpty: true);
        var visibility = JsonBody.OptionalString(body, "visibility") ?? "public";
        if (visibility is not ("public" or "private")) throw MatrixException.InvalidParam("'visibility' must be 'public' or 'private'");
        await grains.GetGrain<IRoomDirectoryGrain>(roomId).SetVisibilityAsync(requester.UserId, visibility == "public");
        return Results.Json(new JsonObject());
    }

    // The spec lets servers serve the list without authentication; Synapse does by default.
    private static async Task<IResult> GetPublicRooms(HttpContext context, PublicRoomStore publicRooms, IOptions<HomeserverOptions> options)
    {
        var query = context.Request.Query;
        int? limit = null;
        if (query["limit"].ToString() is { Length: > 0 } limitText)
            limit = int.TryParse(limitText, NumberStyles.None, CultureInfo.InvariantCulture, out var l)
                ? l
                : throw MatrixException.InvalidParam("'limit' must be a non-negative integer");
        CheckServer(query["server"].ToString(), options.Value.ServerName);
        return Results.Json(await PageAsync(publicRooms, limit, query["since"].ToString(), null));
    }

    private static async Task<IResult> QueryPublicRooms(HttpContext context, PublicRoomStore publicRooms, IOptions<HomeserverOptions> options)
    {
        await RequestAuth.RequireUserAsync(context);
        CheckServer(context.Request.Query["server"].ToString(), options.Value.ServerName);
        var body = JsonBody.Object(context.Request, allowEmpty: true);
        int? limit = null;
        if (body["limit"] is { } limitNode)
            limit = limitNode is JsonValue v && v.TryGetValue<int>(out var l) && l >= 0
                ? l
                : throw MatrixException.InvalidParam("'limit' must be a non-negative integer");
        string? term = null;
        if (body["filter"] is { } filterNode)
        {
            if (filterNode is not JsonObject filter) throw MatrixException.BadJson("'filter' must be an object");
            term = JsonBody.OptionalString(filter, "generic_search_term");
        }
        return Results.Json(await PageAsync(publicRooms, limit, JsonBody.OptionalString(body, "since"), term));
    }

    /// <summary>A page of the list. Batch tokens are offsets into it (<c>p{offset}</c>): the list is small and
    /// ordered stably (members, then room id), which is all a client paging through it needs.</summary>
    private static async Task<JsonObject> PageAsync(PublicRoomStore publicRooms, int? limit, string? since, string? term)
    {
        var offset = 0;
        if (!string.IsNullOrEmpty(since)
            && (!since.StartsWith('p') || !int.TryParse(since.AsSpan(1), NumberStyles.None, CultureInfo.InvariantCulture, out offset)))
            throw MatrixException.InvalidParam("Invalid 'since' token");
        var rooms = await publicRooms.ListAsync();
        if (!string.IsNullOrWhiteSpace(term))
        {
            var t = term.Trim();
            rooms = rooms.Where(r => Contains(r.Name, t) || Contains(r.Topic, t) || Contains(r.CanonicalAlias, t) || Contains(r.RoomId, t)).ToList();
        }
        var take = limit ?? int.MaxValue;
        var page = rooms.Skip(offset).Take(take).ToList();
        var result = new JsonObject
        {
            ["chunk"] = new JsonArray(page.Select(r => (JsonNode)Entry(r)).ToArray()),
            ["total_room_count_estimate"] = rooms.Count,
        };
        if (limit is { } l && (long)offset + l < rooms.Count) result["next_batch"] = $"p{offset + l}";
        if (offset > 0) result["prev_batch"] = $"p{Math.Max(0, offset - (limit ?? offset))}";
        return result;
    }

    private static bool Contains(string? field, string term) => field?.Contains(term, StringComparison.OrdinalIgnoreCase) == true;

    private static JsonObject Entry(PublicRoom room)
    {
        var entry = new JsonObject
        {
            ["room_id"] = room.RoomId,
            ["num_joined_members"] = room.JoinedMembers,
            ["world_readable"] = room.WorldReadable,
            ["guest_can_join"] = room.GuestCanJoin,
            ["join_rule"] = room.JoinRule,
        };
        if (room.Name is not null) entry["name"] = room.Name;
        if (room.Topic is not null) entry["topic"] = room.Topic;
        if (room.CanonicalAlias is not null) entry["canonical_alias"] = room.CanonicalAlias;
        if (room.AvatarUrl is not null) entry["avatar_url"] = room.AvatarUrl;
        if (room.RoomType is not null) entry["room_type"] = room.RoomType;
        return entry;
    }

    private static void CheckServer(string server, string serverName)
    {
        if (server.Length > 0 && server != serverName)
            throw new MatrixException(ErrorCodes.Unknown, "Room directories of other servers are not available", 400);
    }

    private static string Alias(string raw)
    {
        var alias = RoomWrites.Segment(raw);
        return Identifiers.IsValidRoomAlias(alias) ? alias : throw MatrixException.InvalidParam($"Invalid room alias '{Quote.Short(alias)}'");
    }
}

using System.Text;
using System.Text.Json.Nodes;
using Homeserver.AccountData;
using Homeserver.Accounts;
using Homeserver.Api.Http;
using Homeserver.Errors;
using Homeserver.Streams;

namespace Homeserver.Api.Endpoints;

/// <summary>
/// Client config (spec: Client-Server API, "Client Config") and room tagging ("Room Tagging"): a user's own global and
/// per-room account data, tags stored as the room's <c>m.tag</c>. Only the user may read or write their own.
/// </summary>
public static class AccountDataEndpoints
{
    private const string Prefix = RoomEndpoints.Prefix + "/user/{userId}";
    private const int MaxTagBytes = 255;

    public static IEndpointRouteBuilder MapAccountDataEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapGet($"{Prefix}/account_data/{{type}}", GetAccountData);
        app.MapPut($"{Prefix}/account_data/{{type}}", SetAccountData);
        app.MapGet($"{Prefix}/rooms/{{roomId}}/account_data/{{type}}", GetAccountDataPerRoom);
        app.MapPut($"{Prefix}/rooms/{{roomId}}/account_data/{{type}}", SetAccountDataPerRoom);
        app.MapGet($"{Prefix}/rooms/{{roomId}}/tags", GetRoomTags);
        app.MapPut($"{Prefix}/rooms/{{roomId}}/tags/{{tag}}", SetRoomTag);
        app.MapDelete($"{Prefix}/rooms/{{roomId}}/tags/{{tag}}", DeleteRoomTag);
        return app;
    }

    private static async Task<IResult> GetAccountData(HttpContext context, string userId, string type, AccountDataStore store)
    {
        var requester = await RequireSelfAsync(context, userId);
        return Found(await store.GetAsync(requester.UserId, null, RoomWrites.Segment(type)));
    }

    private static async Task<IResult> SetAccountData(HttpContext context, string userId, string type, IGrainFactory grains, StreamNotifier notifier)
    {
        var requester = await RequireSelfAsync(context, userId);
        var body = JsonBody.Object(context.Request);
        var position = await grains.GetGrain<IAccountDataGrain>(requester.UserId).SetAsync(null, ClientType(type), body.ToJsonString());
        return await DoneAsync(notifier, position, context);
    }

    private static async Task<IResult> GetAccountDataPerRoom(HttpContext context, string userId, string roomId, string type, AccountDataStore store)
    {
        var requester = await RequireSelfAsync(context, userId);
        return Found(await store.GetAsync(requester.UserId, RoomWrites.RoomId(roomId), RoomWrites.Segment(type)));
    }

    private static async Task<IResult> SetAccountDataPerRoom(HttpContext context, string userId, string roomId, string type,
        IGrainFactory grains, StreamNotifier notifier)
    {
        var requester = await RequireSelfAsync(context, userId);
        var room = RoomWrites.RoomId(roomId);
        var body = JsonBody.Object(context.Request);
        var position = await grains.GetGrain<IAccountDataGrain>(requester.UserId).SetAsync(room, ClientType(type), body.ToJsonString());
        return await DoneAsync(notifier, position, context);
    }

    private static async Task<IResult> GetRoomTags(HttpContext context, string userId, string roomId, AccountDataStore store)
    {
        var requester = await RequireSelfAsync(context, userId);
        var content = await store.GetAsync(requester.UserId, RoomWrites.RoomId(roomId), AccountDataGrain.TagType);
        var tags = content is null ? null : JsonNode.Parse(content)?["tags"] as JsonObject;
        return Results.Json(new JsonObject { ["tags"] = tags?.DeepClone() ?? new JsonObject() });
    }

    private static async Task<IResult> SetRoomTag(HttpContext context, string userId, string roomId, string tag,
        IGrainFactory grains, StreamNotifier notifier)
    {
        var requester = await RequireSelfAsync(context, userId);
        var room = RoomWrites.RoomId(roomId);
        var name = TagName(tag);
        var body = JsonBody.Object(context.Request, allowEmpty: true);
        if (body["order"] is { } order && (order is not JsonValue v || !v.TryGetValue<double>(out _)))
            throw MatrixException.BadJson("'order' must be a number");
        var position = await grains.GetGrain<IAccountDataGrain>(requester.UserId).SetTagAsync(room, name, body.ToJsonString());
        return await DoneAsync(notifier, position, context);
    }

    private static async Task<IResult> DeleteRoomTag(HttpContext context, string userId, string roomId, string tag,
        IGrainFactory grains, StreamNotifier notifier)
    {
        var requester = await RequireSelfAsync(context, userId);
        var position = await grains.GetGrain<IAccountDataGrain>(requester.UserId).RemoveTagAsync(RoomWrites.RoomId(roomId), TagName(tag));
        return await DoneAsync(notifier, position, context);
    }

    private static async Task<Requester> RequireSelfAsync(HttpContext context, string userId)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        if (RoomWrites.Segment(userId) != requester.UserId)
            throw MatrixException.Forbidden("Cannot access account data of other users");
        return requester;
    }

    // The server owns these types (spec: 405 M_BAD_JSON): read markers and push rules have their own APIs.
    private static string ClientType(string raw)
    {
        var type = RoomWrites.Segment(raw);
        if (type.Length == 0 || type.Length > 255) throw MatrixException.InvalidParam("Invalid account data type");
        if (type is "m.fully_read" or "m.push_rules")
            throw new MatrixException(ErrorCodes.BadJson, $"Cannot set {type} through this API", 405);
        return type;
    }

    private static string TagName(string raw)
    {
        var tag = RoomWrites.Segment(raw);
        if (tag.Length == 0 || Encoding.UTF8.GetByteCount(tag) > MaxTagBytes) throw MatrixException.InvalidParam("Invalid tag name");
        return tag;
    }

    private static IResult Found(string? content) =>
        content is null ? throw MatrixException.NotFound("Account data not found") : Results.Text(content, "application/json");

    private static async Task<IResult> DoneAsync(StreamNotifier notifier, long position, HttpContext context)
    {
        await UserStreamWrites.WaitAsync(notifier, StreamNames.AccountData, position, context.RequestAborted);
        return Results.Json(new JsonObject());
    }
}

using System.Text.Json.Nodes;
using Homeserver.Accounts;
using Homeserver.Api.Http;
using Homeserver.Api.RateLimiting;
using Homeserver.Errors;
using Homeserver.Rooms;
using Homeserver.Streams;

namespace Homeserver.Api.Endpoints;

/// <summary>
/// Room membership (spec: Client-Server API, "Room membership"): joining, inviting, leaving, forgetting, kicking,
/// banning and the user's joined rooms. Every change is one call to the room's grain.
/// </summary>
public static class MembershipEndpoints
{
    private const string Prefix = RoomEndpoints.Prefix;

    public static IEndpointRouteBuilder MapMembershipEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPost($"{Prefix}/join/{{roomIdOrAlias}}", JoinRoom).WithMetadata(ClientRateLimit.Joins);
        app.MapPost($"{Prefix}/rooms/{{roomId}}/join", JoinRoomById).WithMetadata(ClientRateLimit.Joins);
        app.MapPost($"{Prefix}/rooms/{{roomId}}/invite", InviteUser).WithMetadata(ClientRateLimit.InvitesPerIssuer);
        app.MapPost($"{Prefix}/rooms/{{roomId}}/leave", LeaveRoom);
        app.MapPost($"{Prefix}/rooms/{{roomId}}/forget", ForgetRoom);
        app.MapPost($"{Prefix}/rooms/{{roomId}}/kick", Kick);
        app.MapPost($"{Prefix}/rooms/{{roomId}}/ban", Ban);
        app.MapPost($"{Prefix}/rooms/{{roomId}}/unban", Unban);
        app.MapGet($"{Prefix}/joined_rooms", GetJoinedRooms);
        return app;
    }

    private static async Task<IResult> JoinRoom(HttpContext context, string roomIdOrAlias, IGrainFactory grains, StreamNotifier notifier,
        RoomEventStore store)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var target = RoomWrites.Segment(roomIdOrAlias);
        string roomId;
        if (target.StartsWith('#'))
        {
            if (!Matrix.Identifiers.IsValidRoomAlias(target)) throw MatrixException.InvalidParam($"Invalid room alias '{Quote.Short(target)}'");
            roomId = await store.ResolveAliasAsync(target) ?? throw MatrixException.NotFound($"Room alias {target} not found");
        }
        else if (target.StartsWith('!')) roomId = RoomWrites.RoomId(target);
        else throw MatrixException.InvalidParam($"'{Quote.Short(target)}' is neither a room id nor a room alias");
        return await JoinAsync(context, requester, roomId, grains, notifier);
    }

    private static async Task<IResult> JoinRoomById(HttpContext context, string roomId, IGrainFactory grains, StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        return await JoinAsync(context, requester, RoomWrites.RoomId(roomId), grains, notifier);
    }

    private static async Task<IResult> JoinAsync(HttpContext context, Requester requester, string roomId, IGrainFactory grains, StreamNotifier notifier)
    {
        var body = JsonBody.Object(context.Request, allowEmpty: true);
        await ChangeAsync(context, grains, notifier, roomId,
            new MembershipCommand(requester.UserId, requester.UserId, MembershipAction.Join, JsonBody.OptionalString(body, "reason"),
                ExtraContentJson: ExtraContent(body), SenderIsGuest: requester.IsGuest));
        return Results.Json(new JsonObject { ["room_id"] = roomId });
    }

    private static async Task<IResult> InviteUser(HttpContext context, string roomId, IGrainFactory grains, StreamNotifier notifier,
        ClientRateLimits limits)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var body = JsonBody.Object(context.Request);
        var room = RoomWrites.RoomId(roomId);
        var invitee = RoomWrites.UserId(body);
        // The issuer's limit is the endpoint's; these two need the room and the body (Synapse's ratelimit_invite).
        await limits.TakeAsync(ClientRateLimit.InvitesPerRoom, room);
        await limits.TakeAsync(ClientRateLimit.InvitesPerUser, invitee);
        await ChangeAsync(context, grains, notifier, room, new MembershipCommand(
            requester.UserId, invitee, MembershipAction.Invite, JsonBody.OptionalString(body, "reason"),
            JsonBody.OptionalBool(body, "is_direct"), ExtraContent(body)));
        return Results.Json(new JsonObject());
    }

    private static async Task<IResult> LeaveRoom(HttpContext context, string roomId, IGrainFactory grains, StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var body = JsonBody.Object(context.Request, allowEmpty: true);
        await ChangeAsync(context, grains, notifier, RoomWrites.RoomId(roomId),
            new MembershipCommand(requester.UserId, requester.UserId, MembershipAction.Leave, JsonBody.OptionalString(body, "reason"),
                ExtraContentJson: ExtraContent(body)));
        return Results.Json(new JsonObject());
    }

    private static async Task<IResult> ForgetRoom(HttpContext context, string roomId, IGrainFactory grains, StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var result = await grains.GetGrain<IRoomGrain>(RoomWrites.RoomId(roomId)).ForgetAsync(requester.UserId);
        await RoomWrites.WaitAsync(notifier, result, context.RequestAborted);
        return Results.Json(new JsonObject());
    }

    private static Task<IResult> Kick(HttpContext context, string roomId, IGrainFactory grains, StreamNotifier notifier) =>
        ModerateAsync(context, roomId, MembershipAction.Kick, grains, notifier);

    private static Task<IResult> Ban(HttpContext context, string roomId, IGrainFactory grains, StreamNotifier notifier) =>
        ModerateAsync(context, roomId, MembershipAction.Ban, grains, notifier);

    private static Task<IResult> Unban(HttpContext context, string roomId, IGrainFactory grains, StreamNotifier notifier) =>
        ModerateAsync(context, roomId, MembershipAction.Unban, grains, notifier);

    private static async Task<IResult> ModerateAsync(HttpContext context, string roomId, MembershipAction action, IGrainFactory grains,
        StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var body = JsonBody.Object(context.Request);
        await ChangeAsync(context, grains, notifier, RoomWrites.RoomId(roomId),
            new MembershipCommand(requester.UserId, RoomWrites.UserId(body), action, JsonBody.OptionalString(body, "reason"),
                ExtraContentJson: ExtraContent(body)));
        return Results.Json(new JsonObject());
    }

    /// <summary>Request keys that are not instructions to the server (the target, third-party invite fields): kept in
    /// the membership event's content, as Synapse keeps them.</summary>
    private static readonly HashSet<string> NotContent =
        ["user_id", "membership", "reason", "is_direct", "third_party_signed", "id_server", "id_access_token", "medium", "address"];

    private static string? ExtraContent(JsonObject body)
    {
        var extra = new JsonObject();
        foreach (var (key, value) in body)
            if (!NotContent.Contains(key)) extra[key] = value?.DeepClone();
        return extra.Count == 0 ? null : extra.ToJsonString();
    }

    private static async Task<IResult> GetJoinedRooms(HttpContext context, RoomEventStore store)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var rooms = await store.GetJoinedRoomsAsync(requester.UserId);
        return Results.Json(new JsonObject { ["joined_rooms"] = new JsonArray(rooms.Select(r => (JsonNode)JsonValue.Create(r)).ToArray()) });
    }

    private static async Task ChangeAsync(HttpContext context, IGrainFactory grains, StreamNotifier notifier, string roomId, MembershipCommand command)
    {
        var result = await grains.GetGrain<IRoomGrain>(roomId).SetMembershipAsync(command);
        await RoomWrites.WaitAsync(notifier, result, context.RequestAborted);
    }
}

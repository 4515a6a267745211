using System.Globalization;
using System.Text.Json.Nodes;
using Homeserver.Api.Http;
using Homeserver.Errors;
using Homeserver.Matrix;
using Homeserver.Rooms;
using Homeserver.Streams;
using Microsoft.Extensions.Options;

namespace Homeserver.Api.Endpoints;

/// <summary>
/// Rooms (spec: Client-Server API, "Rooms"): creation and the read endpoints (state, members, single events,
/// context). Writes go to the room's grain; reads come from this silo's <see cref="RoomEventStore"/>.
/// </summary>
public static class RoomEndpoints
{
    internal const string Prefix = "/_matrix/client/v3";
    private const int MaxContextLimit = 100;

    /// <summary>Maps the rooms area: this class, <see cref="MembershipEndpoints"/> and <see cref="EventEndpoints"/>.</summary>
    public static IEndpointRouteBuilder MapRoomEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPost($"{Prefix}/createRoom", CreateRoom);
        app.MapGet($"{Prefix}/rooms/{{roomId}}/state", GetRoomState);
        app.MapGet($"{Prefix}/rooms/{{roomId}}/state/{{eventType}}/{{**stateKey}}", GetRoomStateWithKey);
        app.MapGet($"{Prefix}/rooms/{{roomId}}/members", GetMembersByRoom);
        app.MapGet($"{Prefix}/rooms/{{roomId}}/joined_members", GetJoinedMembersByRoom);
        app.MapGet($"{Prefix}/rooms/{{roomId}}/event/{{eventId}}", GetOneRoomEvent);
        app.MapGet($"{Prefix}/rooms/{{roomId}}/context/{{eventId}}", GetEventContext);
        app.MapPost($"{Prefix}/rooms/{{roomId}}/upgrade", UpgradeRoom);
        app.MapMembershipEndpoints();
        app.MapEventEndpoints();
        return app;
    }

    private static async Task<IResult> CreateRoom(HttpContext context, IGrainFactory grains, StreamNotifier notifier,
        IOptions<HomeserverOptions> options)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        if (requester.IsGuest) throw new MatrixException(ErrorCodes.GuestAccessForbidden, "Guests cannot create rooms", 403);
        var body = JsonBody.Object(context.Request, allowEmpty: true);

        var visibility = JsonBody.OptionalString(body, "visibility") ?? "private";
        if (visibility is not ("public" or "private")) throw MatrixException.InvalidParam("'visibility' must be 'public' or 'private'");
        var preset = JsonBody.OptionalString(body, "preset") ?? (visibility == "public" ? "public_chat" : "private_chat");
        if (!RoomCreationPlan.Presets.Contains(preset)) throw MatrixException.InvalidParam($"Unknown preset '{Quote.Short(preset)}'");
        var version = JsonBody.OptionalString(body, "room_version") ?? RoomVersions.Default;
        if (!RoomVersions.IsKnown(version))
            throw new MatrixException(ErrorCodes.UnsupportedRoomVersion, $"Unsupported room version '{Quote.Short(version)}'", 400);

        var invite = new List<string>();
        if (body["invite"] is { } inviteNode)
        {
            if (inviteNode is not JsonArray array) throw MatrixException.BadJson("'invite' must be a list of user ids");
            foreach (var item in array)
            {
                var userId = item is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw MatrixException.BadJson("'invite' must be a list of user ids");
                if (!Identifiers.IsValidUserId(userId)) throw MatrixException.InvalidParam($"Invalid user id '{Quote.Short(userId)}' in 'invite'");
                if (userId != requester.UserId && !invite.Contains(userId)) invite.Add(userId);
            }
        }
        var initialState = new List<string>();
        if (body["initial_state"] is { } stateNode)
        {
            if (stateNode is not JsonArray array) throw MatrixException.BadJson("'initial_state' must be a list of events");
            foreach (var item in array)
                initialState.Add(item is JsonObject o ? o.ToJsonString() : throw MatrixException.BadJson("'initial_state' entries must be objects"));
        }

        var command = new CreateRoomCommand(
            requester.UserId, requester.DeviceId, version, preset, visibility == "public",
            JsonBody.OptionalString(body, "name"), JsonBody.OptionalString(body, "topic"),
            JsonBody.OptionalString(body, "room_alias_name"), invite.ToArray(), JsonBody.OptionalBool(body, "is_direct"),
            OptionalObject(body, "creation_content"), OptionalObject(body, "power_level_content_override"), initialState.ToArray());
        var roomId = Identifiers.NewRoomId(options.Value.ServerName);
        var result = await grains.GetGrain<IRoomGrain>(roomId).CreateAsync(command);
        await RoomWrites.WaitAsync(notifier, result, context.RequestAborted);
        return Results.Json(new JsonObject { ["room_id"] = roomId });
    }

    /// <summary>POST /rooms/{roomId}/upgrade (spec "Room Upgrades"): the old room's grain does the whole upgrade.</summary>
    private static async Task<IResult> UpgradeRoom(HttpContext context, string roomId, IGrainFactory grains, StreamNotifier notifier,
        IOptions<HomeserverOptions> options)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        if (requester.IsGuest) throw new MatrixException(ErrorCodes.GuestAccessForbidden, "Guests cannot upgrade rooms", 403);
        var body = JsonBody.Object(context.Request);
        var version = JsonBody.RequireString(body, "new_version");
        if (!RoomVersions.IsKnown(version))
            throw new MatrixException(ErrorCodes.UnsupportedRoomVersion, $"Unsupported room version '{Quote.Short(version)}'", 400);
        var result = await grains.GetGrain<IRoomGrain>(RoomWrites.RoomId(roomId)).UpgradeAsync(
            new RoomUpgradeCommand(requester.UserId, requester.DeviceId, version, Identifiers.NewRoomId(options.Value.ServerName)));
        foreach (var write in result.Writes) await RoomWrites.WaitAsync(notifier, write, context.RequestAborted);
        return Results.Json(new JsonObject { ["replacement_room"] = result.ReplacementRoom });
    }

    private static async Task<IResult> GetRoomState(HttpContext context, string roomId, RoomEventStore store, RoomVisibility visibility)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        roomId = RoomWrites.RoomId(roomId);
        var upTo = await visibility.RequireReadableAsync(roomId, requester.UserId);
        var events = await store.GetStateUpToAsync(roomId, upTo);
        return Results.Json(RoomEventFormat.ToClientArray(events, requester.UserId, requester.DeviceId));
    }

    private static async Task<IResult> GetRoomStateWithKey(HttpContext context, string roomId, string eventType, string? stateKey,
        RoomEventStore store, RoomVisibility visibility)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        roomId = RoomWrites.RoomId(roomId);
        eventType = RoomWrites.Segment(eventType);
        stateKey = RoomWrites.Segment(stateKey ?? "");
        var upTo = await visibility.RequireReadableAsync(roomId, requester.UserId);
        var ev = upTo is { } point
            ? await store.GetStateEventAtAsync(roomId, eventType, stateKey, point)
            : (await store.GetCurrentStateAsync(roomId)).Get(eventType, stateKey);
        if (ev is null) throw MatrixException.NotFound($"No {Quote.Short(eventType)} state with key '{Quote.Short(stateKey)}' in this room");
        var client = RoomEventFormat.ToClient(ev, requester.UserId, requester.DeviceId);
        if (context.Request.Query["format"] == "event") return Results.Json(client);
        return Results.Json(client["content"] ?? new JsonObject());
    }

    private static async Task<IResult> GetMembersByRoom(HttpContext context, string roomId, RoomEventStore store, RoomVisibility visibility)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        roomId = RoomWrites.RoomId(roomId);
        var upTo = await visibility.RequireReadableAsync(roomId, requester.UserId);
        var query = context.Request.Query;
        IReadOnlyList<StoredEvent> state;
        if (query["at"].ToString() is { Length: > 0 } at)
        {
            var token = StreamToken.Parse(at, "at");
            state = await store.GetStateAtStreamAsync(roomId, store.PositionIn(token, roomId));
            if (upTo is { } point) state = state.Where(e => e.Topological <= point).ToList();
        }
        else state = await store.GetStateUpToAsync(roomId, upTo);

        var membership = query["membership"].ToString();
        var notMembership = query["not_membership"].ToString();
        var members = state.Where(e => e.Type == "m.room.member").Where(e =>
        {
            var m = RoomEventFormat.ContentString(e.Utf8Json, "membership");
            return (membership.Length == 0 || m == membership) && (notMembership.Length == 0 || m != notMembership);
        });
        // Written from each member event's stored bytes: a room of 10,000 members would otherwise build 10,000 trees.
        var chunk = new JsonArray();
        foreach (var member in members) chunk.Add(RoomEventFormat.ToClientJson(member, requester.UserId, requester.DeviceId));
        return Results.Json(new JsonObject { ["chunk"] = chunk });
    }

    private static async Task<IResult> GetJoinedMembersByRoom(HttpContext context, string roomId, RoomEventStore store, RoomVisibility visibility)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        roomId = RoomWrites.RoomId(roomId);
        var upTo = await visibility.RequireReadableAsync(roomId, requester.UserId);
        var state = await store.GetStateUpToAsync(roomId, upTo);
        var joined = new JsonObject();
        foreach (var member in state.Where(e => e.Type == "m.room.member" && e.StateKey is not null))
        {
            if (RoomEventFormat.ContentString(member.Utf8Json, "membership") != "join") continue;
            // Both keys always, null when unset, as Synapse answers (clients and SyTest read them unconditionally).
            joined[member.StateKey!] = new JsonObject
            {
                ["display_name"] = RoomEventFormat.ContentString(member.Utf8Json, "displayname"),
                ["avatar_url"] = RoomEventFormat.ContentString(member.Utf8Json, "avatar_url"),
            };
        }
        return Results.Json(new JsonObject { ["joined"] = joined });
    }

    private static async Task<IResult> GetOneRoomEvent(HttpContext context, string roomId, string eventId, RoomEventStore store,
        RoomVisibility visibility, RoomRelations relations)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        roomId = RoomWrites.RoomId(roomId);
        var ev = await VisibleEventAsync(store, visibility, requester.UserId, roomId, RoomWrites.Segment(eventId));
        return Results.Json(await relations.ToClientAsync(ev, requester.UserId, requester.DeviceId));
    }

    /// <summary>
    /// The event, the visible events around it and the state at it. Pagination tokens are topological:
    /// <c>t{position}</c>, where /messages going backwards from <c>start</c> continues before the earliest event
    /// returned and forwards from <c>end</c> after the latest.
    /// </summary>
    private static async Task<IResult> GetEventContext(HttpContext context, string roomId, string eventId, RoomEventStore store,
        RoomVisibility visibility, RoomRelations relations)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        roomId = RoomWrites.RoomId(roomId);
        var limit = 10;
        if (context.Request.Query["limit"].ToString() is { Length: > 0 } limitText
            && (!int.TryParse(limitText, NumberStyles.None, CultureInfo.InvariantCulture, out limit)))
            throw MatrixException.InvalidParam("'limit' must be a non-negative integer");
        limit = Math.Min(limit, MaxContextLimit);
        var lazyMembers = QueryParameters.Optional(context, "filter") is { } filterText
                          && ClientJson.Parse(filterText) is JsonObject filter && filter["lazy_load_members"] is JsonValue ll
                          && (ll.TryGetValue<bool>(out var lazy) ? lazy : throw MatrixException.BadJson("'lazy_load_members' must be a boolean"));

        // Someone who may not read the room is told so (403), not that the event is missing.
        await visibility.RequireReadableAsync(roomId, requester.UserId);
        var ev = await VisibleEventAsync(store, visibility, requester.UserId, roomId, RoomWrites.Segment(eventId));
        var beforeLimit = limit / 2;
        var before = new List<StoredEvent>();
        foreach (var e in await store.GetEventsByTopologicalAsync(roomId, ev.Topological, Direction.Backwards, beforeLimit))
            if (await visibility.CanSeeAsync(requester.UserId, e)) before.Add(e);
        var after = new List<StoredEvent>();
        foreach (var e in await store.GetEventsByTopologicalAsync(roomId, ev.Topological, Direction.Forwards, limit - beforeLimit))
            if (await visibility.CanSeeAsync(requester.UserId, e)) after.Add(e);
        IEnumerable<StoredEvent> state = await store.GetStateAtTopologicalAsync(roomId, ev.Topological);
        if (lazyMembers)
        {
            // Lazy-loaded members: of the member events, only those of the senders shown.
            var senders = before.Concat(after).Append(ev).Select(e => e.Sender).ToHashSet(StringComparer.Ordinal);
            state = state.Where(e => e.Type != "m.room.member" || (e.StateKey is not null && senders.Contains(e.StateKey)));
        }

        var start = before.Count > 0 ? before[^1].Topological : ev.Topological;
        var end = after.Count > 0 ? after[^1].Topological : ev.Topological;
        return Results.Json(new JsonObject
        {
            ["event"] = await relations.ToClientAsync(ev, requester.UserId, requester.DeviceId),
            ["events_before"] = await relations.ToClientArrayAsync(before, requester.UserId, requester.DeviceId),
            ["events_after"] = await relations.ToClientArrayAsync(after, requester.UserId, requester.DeviceId),
            ["state"] = RoomEventFormat.ToClientArray(state.ToList(), requester.UserId, requester.DeviceId),
            ["start"] = $"t{start}",
            ["end"] = $"t{end}",
        });
    }

    // Events the user may not see are reported as missing, so their existence does not leak.
    private static async Task<StoredEvent> VisibleEventAsync(RoomEventStore store, RoomVisibility visibility, string userId, string roomId, string eventId)
    {
        var ev = await store.GetEventAsync(eventId);
        if (ev is null || ev.RoomId != roomId || !await visibility.CanSeeAsync(userId, ev))
            throw MatrixException.NotFound("Event not found");
        return ev;
    }

    private static string? OptionalObject(JsonObject body, string name) =>
        body[name] switch
        {
            null => null,
            JsonObject o => o.ToJsonString(),
            _ => throw MatrixException.BadJson($"'{name}' must be an object"),
        };
}

/// <summary>What every room endpoint does around a grain call: path ids, and read-your-writes after a write.</summary>
internal static class RoomWrites
{
    private static readonly TimeSpan ReadYourWritesTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Waits (bounded) until this silo's reader has applied the write, so the client's next read sees it.</summary>
    public static async Task WaitAsync(StreamNotifier notifier, RoomWriteResult result, CancellationToken ct)
    {
        var target = notifier.Current;
        if (result.Position > 0) target = target.Advance(StreamNames.Events, result.Writer, result.Position);
        if (result.PushRulesPosition > 0) target = target.Advance(StreamNames.PushRules, 0, result.PushRulesPosition);
        if (result.AccountDataPosition > 0) target = target.Advance(StreamNames.AccountData, 0, result.AccountDataPosition);
        if (result.Position <= 0 && result.PushRulesPosition <= 0 && result.AccountDataPosition <= 0) return;
        await notifier.WaitForTokenAsync(target, ReadYourWritesTimeout, ct);
    }

    /// <summary>Routing decodes everything but <c>%2F</c>; ids and state keys may contain slashes.</summary>
    public static string Segment(string value) =>
        value.Contains('%') ? value.Replace("%2F", "/", StringComparison.OrdinalIgnoreCase) : value;

    public static string RoomId(string raw)
    {
        var roomId = Segment(raw);
        return Identifiers.IsValidRoomId(roomId) ? roomId : throw MatrixException.InvalidParam($"Invalid room id '{Quote.Short(roomId)}'");
    }

    public static string UserId(JsonObject body, string name = "user_id")
    {
        var userId = JsonBody.RequireString(body, name);
        return Identifiers.IsValidUserId(userId) ? userId : throw MatrixException.InvalidParam($"Invalid user id '{Quote.Short(userId)}'");
    }
}

using System.Text.Json.Nodes;
using Homeserver.Api.Http;
using Homeserver.Errors;
using Homeserver.Keys;
using Homeserver.Matrix;

namespace Homeserver.Api.Endpoints;

/// <summary>Server-side key backups (spec: Client-Server API, "Server-side key backups"): one call to the user's
/// <see cref="IKeyBackupGrain"/> each.</summary>
public static class KeyBackupEndpoints
{
    private const string Prefix = "/_matrix/client/v3/room_keys";

    public static IEndpointRouteBuilder MapKeyBackupEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPost($"{Prefix}/version", CreateVersion);
        app.MapGet($"{Prefix}/version", (HttpContext c, IGrainFactory g) => GetVersion(c, g, null));
        app.MapGet($"{Prefix}/version/{{version}}", (HttpContext c, IGrainFactory g, string version) => GetVersion(c, g, version));
        app.MapPut($"{Prefix}/version/{{version}}", UpdateVersion);
        app.MapDelete($"{Prefix}/version/{{version}}", DeleteVersion);
        app.MapPut($"{Prefix}/keys", (HttpContext c, IGrainFactory g) => PutKeys(c, g, null, null));
        app.MapPut($"{Prefix}/keys/{{roomId}}", (HttpContext c, IGrainFactory g, string roomId) => PutKeys(c, g, roomId, null));
        app.MapPut($"{Prefix}/keys/{{roomId}}/{{sessionId}}", (HttpContext c, IGrainFactory g, string roomId, string sessionId) => PutKeys(c, g, roomId, sessionId));
        app.MapGet($"{Prefix}/keys", (HttpContext c, IGrainFactory g) => GetKeys(c, g, null, null));
        app.MapGet($"{Prefix}/keys/{{roomId}}", (HttpContext c, IGrainFactory g, string roomId) => GetKeys(c, g, roomId, null));
        app.MapGet($"{Prefix}/keys/{{roomId}}/{{sessionId}}", (HttpContext c, IGrainFactory g, string roomId, string sessionId) => GetKeys(c, g, roomId, sessionId));
        app.MapDelete($"{Prefix}/keys", (HttpContext c, IGrainFactory g) => DeleteKeys(c, g, null, null));
        app.MapDelete($"{Prefix}/keys/{{roomId}}", (HttpContext c, IGrainFactory g, string roomId) => DeleteKeys(c, g, roomId, null));
        app.MapDelete($"{Prefix}/keys/{{roomId}}/{{sessionId}}", (HttpContext c, IGrainFactory g, string roomId, string sessionId) => DeleteKeys(c, g, roomId, sessionId));
        return app;
    }

    private static async Task<IResult> CreateVersion(HttpContext context, IGrainFactory grains)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var (algorithm, authData) = VersionBody(JsonBody.Object(context.Request));
        var version = await grains.GetGrain<IKeyBackupGrain>(requester.UserId).CreateVersionAsync(algorithm, authData);
        return Results.Json(new JsonObject { ["version"] = version });
    }

    private static async Task<IResult> GetVersion(HttpContext context, IGrainFactory grains, string? version)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var info = await grains.GetGrain<IKeyBackupGrain>(requester.UserId).GetVersionAsync(version)
                   ?? throw MatrixException.NotFound(version is null ? "No current backup version" : "Unknown backup version");
        return Results.Json(new JsonObject
        {
            ["algorithm"] = info.Algorithm,
            ["auth_data"] = JsonNode.Parse(info.AuthDataJson),
            ["count"] = info.Count,
            ["etag"] = info.Etag,
            ["version"] = info.Version,
        });
    }

    private static async Task<IResult> UpdateVersion(HttpContext context, IGrainFactory grains, string version)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var body = JsonBody.Object(context.Request);
        var (algorithm, authData) = VersionBody(body);
        // Clients send the version as the string the server gave them; some (SyTest, older ones) as a number.
        if (body["version"] is { } named && (named is not JsonValue v || VersionText(v) != version))
            throw MatrixException.InvalidParam("The version in the body does not match the one in the path");
        await grains.GetGrain<IKeyBackupGrain>(requester.UserId).UpdateVersionAsync(version, algorithm, authData);
        return Results.Json(new JsonObject());
    }

    private static async Task<IResult> DeleteVersion(HttpContext context, IGrainFactory grains, string version)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        await grains.GetGrain<IKeyBackupGrain>(requester.UserId).DeleteVersionAsync(version);
        return Results.Json(new JsonObject());
    }

    private static async Task<IResult> PutKeys(HttpContext context, IGrainFactory grains, string? roomId, string? sessionId)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var version = RequireVersion(context);
        var body = JsonBody.Object(context.Request);
        var keys = new List<BackupKey>();
        if (roomId is null)
        {
            if (body["rooms"] is not JsonObject rooms) throw MatrixException.BadJson("'rooms' must be an object");
            foreach (var (room, roomBody) in rooms) AddSessions(keys, ValidRoom(room), roomBody);
        }
        else if (sessionId is null) AddSessions(keys, ValidRoom(RoomWrites.Segment(roomId)), body);
        else keys.Add(Key(ValidRoom(RoomWrites.Segment(roomId)), ValidSession(RoomWrites.Segment(sessionId)), body));
        var result = await grains.GetGrain<IKeyBackupGrain>(requester.UserId).PutKeysAsync(version, keys.ToArray());
        return Results.Json(new JsonObject { ["count"] = result.Count, ["etag"] = result.Etag });
    }

    private static async Task<IResult> GetKeys(HttpContext context, IGrainFactory grains, string? roomId, string? sessionId)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var version = RequireVersion(context);
        var room = roomId is null ? null : RoomWrites.Segment(roomId);
        var session = sessionId is null ? null : RoomWrites.Segment(sessionId);
        var keys = await grains.GetGrain<IKeyBackupGrain>(requester.UserId).GetKeysAsync(version, room, session);
        if (session is not null)
            return keys.Length == 0 ? throw MatrixException.NotFound("No room_keys found") : Results.Json(KeyJson(keys[0]));
        if (room is not null) return Results.Json(new JsonObject { ["sessions"] = SessionsJson(keys) });
        var rooms = new JsonObject();
        foreach (var group in keys.GroupBy(k => k.RoomId)) rooms[group.Key] = new JsonObject { ["sessions"] = SessionsJson(group) };
        return Results.Json(new JsonObject { ["rooms"] = rooms });
    }

    private static async Task<IResult> DeleteKeys(HttpContext context, IGrainFactory grains, string? roomId, string? sessionId)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var version = RequireVersion(context);
        var result = await grains.GetGrain<IKeyBackupGrain>(requester.UserId).DeleteKeysAsync(version,
            roomId is null ? null : RoomWrites.Segment(roomId), sessionId is null ? null : RoomWrites.Segment(sessionId));
        return Results.Json(new JsonObject { ["count"] = result.Count, ["etag"] = result.Etag });
    }

    private static (string Algorithm, string AuthData) VersionBody(JsonObject body)
    {
        var algorithm = JsonBody.RequireString(body, "algorithm");
        // auth_data belongs to the algorithm, not to the server: like Synapse, any JSON value is kept and handed back as
        // it came (the spec's clients send an object; older ones and SyTest an opaque string).
        if (!body.TryGetPropertyValue("auth_data", out var authData) || authData is null) throw MatrixException.MissingParam("Missing 'auth_data'");
        return (algorithm, authData.ToJsonString());
    }

    private static string RequireVersion(HttpContext context) =>
        context.Request.Query["version"].ToString() is { Length: > 0 } version
            ? version
            : throw MatrixException.MissingParam("Missing 'version' query parameter");

    private static void AddSessions(List<BackupKey> keys, string roomId, JsonNode? roomBody)
    {
        if (roomBody is not JsonObject room || room["sessions"] is not JsonObject sessions)
            throw MatrixException.BadJson("Each room must have a 'sessions' object");
        foreach (var (session, data) in sessions) keys.Add(Key(roomId, ValidSession(session), data));
    }

    private static BackupKey Key(string roomId, string sessionId, JsonNode? data)
    {
        if (data is not JsonObject key) throw MatrixException.BadJson("A backed-up key must be an object");
        var first = NonNegative(key, "first_message_index");
        var forwarded = NonNegative(key, "forwarded_count");
        if (key["is_verified"] is not JsonValue verified || !verified.TryGetValue<bool>(out var isVerified))
            throw MatrixException.BadJson("'is_verified' must be a boolean");
        // The encrypted session is the algorithm's business (an object for m.megolm_backup.v1): kept as given, as Synapse does.
        if (key["session_data"] is not { } sessionData) throw MatrixException.BadJson("'session_data' is required");
        return new BackupKey(roomId, sessionId, first, forwarded, isVerified, sessionData.ToJsonString());
    }

    private static long NonNegative(JsonObject key, string name) =>
        key[name] is JsonValue v && v.TryGetValue<long>(out var n) && n >= 0 ? n : throw MatrixException.BadJson($"'{name}' must be a non-negative integer");

    private static string? VersionText(JsonValue v) =>
        v.TryGetValue<string>(out var s) ? s : v.TryGetValue<long>(out var n) ? n.ToString(System.Globalization.CultureInfo.InvariantCulture) : null;

    // The keys name rooms the client knows of; the server never resolves them, so any id is kept as given (as Synapse
    // does), bounded like every identifier.
    private static string ValidRoom(string roomId) =>
        roomId.Length > 0 ? InputLimits.Identifier(roomId, "A room id") : throw MatrixException.InvalidParam("Invalid room id");

    private static string ValidSession(string sessionId) =>
        sessionId.Length > 0 ? InputLimits.Identifier(sessionId, "A session id") : throw MatrixException.InvalidParam("Invalid session id");

    private static JsonObject SessionsJson(IEnumerable<BackupKey> keys)
    {
        var sessions = new JsonObject();
        foreach (var key in keys) sessions[key.SessionId] = KeyJson(key);
        return sessions;
    }

    private static JsonObject KeyJson(BackupKey key) => new()
    {
        ["first_message_index"] = key.FirstMessageIndex,
        ["forwarded_count"] = key.ForwardedCount,
        ["is_verified"] = key.IsVerified,
        ["session_data"] = JsonNode.Parse(key.SessionDataJson),
    };
}

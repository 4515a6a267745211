using System.Text.Json.Nodes;
using Homeserver.Api.Http;
using Homeserver.Errors;
using Homeserver.Matrix;
using Homeserver.Profile;
using Homeserver.Streams;
using Microsoft.Extensions.Options;

namespace Homeserver.Api.Endpoints;

/// <summary>Profiles (spec: Client-Server API, "Profiles") and the user directory.</summary>
public static class ProfileEndpoints
{
    private const string Prefix = "/_matrix/client/v3";
    private const int MaxDisplayNameLength = 256;
    private const int MaxAvatarUrlLength = 1000;
    private const int DefaultSearchLimit = 10;
    private static readonly TimeSpan ReadYourWritesTimeout = TimeSpan.FromSeconds(10);

    public static IEndpointRouteBuilder MapProfileEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapGet($"{Prefix}/profile/{{userId}}", GetUserProfile);
        app.MapGet($"{Prefix}/profile/{{userId}}/displayname", GetDisplayName);
        app.MapPut($"{Prefix}/profile/{{userId}}/displayname", SetDisplayName);
        app.MapGet($"{Prefix}/profile/{{userId}}/avatar_url", GetAvatarUrl);
        app.MapPut($"{Prefix}/profile/{{userId}}/avatar_url", SetAvatarUrl);
        app.MapPost($"{Prefix}/user_directory/search", SearchUserDirectory);
        return app;
    }

    // Profiles are public on this server (Synapse's default, require_auth_for_profile_requests: false).
    private static async Task<IResult> GetUserProfile(string userId, ProfileStore store, IOptions<HomeserverOptions> options)
    {
        var profile = await LoadAsync(userId, store, options.Value.ServerName);
        var body = new JsonObject();
        if (profile.DisplayName is not null) body["displayname"] = profile.DisplayName;
        if (profile.AvatarUrl is not null) body["avatar_url"] = profile.AvatarUrl;
        return Results.Json(body);
    }

    private static async Task<IResult> GetDisplayName(string userId, ProfileStore store, IOptions<HomeserverOptions> options)
    {
        var profile = await LoadAsync(userId, store, options.Value.ServerName);
        return Results.Json(profile.DisplayName is null ? new JsonObject() : new JsonObject { ["displayname"] = profile.DisplayName });
    }

    private static async Task<IResult> GetAvatarUrl(string userId, ProfileStore store, IOptions<HomeserverOptions> options)
    {
        var profile = await LoadAsync(userId, store, options.Value.ServerName);
        return Results.Json(profile.AvatarUrl is null ? new JsonObject() : new JsonObject { ["avatar_url"] = profile.AvatarUrl });
    }

    private static Task<IResult> SetDisplayName(HttpContext context, string userId, IGrainFactory grains, StreamNotifier notifier) =>
        SetAsync(context, userId, "displayname", MaxDisplayNameLength, grains, notifier);

    private static Task<IResult> SetAvatarUrl(HttpContext context, string userId, IGrainFactory grains, StreamNotifier notifier) =>
        SetAsync(context, userId, "avatar_url", MaxAvatarUrlLength, grains, notifier);

    private static async Task<IResult> SetAsync(HttpContext context, string userId, string field, int maxLength,
        IGrainFactory grains, StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        userId = RoomWrites.Segment(userId);
        if (userId != requester.UserId) throw MatrixException.Forbidden($"Cannot set another user's {field}");
        var body = JsonBody.Object(context.Request);
        if (!body.TryGetPropertyValue(field, out var node)) throw MatrixException.MissingParam($"Missing key '{field}'");
        string? value = null;
        if (node is not null)
        {
            if (node is not JsonValue v || !v.TryGetValue(out value)) throw MatrixException.InvalidParam($"'{field}' must be a string");
            if (value.Length > maxLength) throw MatrixException.BadJson($"'{field}' is too long (max {maxLength})");
            // Synapse treats an empty value as removing the field.
            if (value.Length == 0) value = null;
        }
        var update = field == "displayname" ? new ProfileUpdate(true, value, false, null) : new ProfileUpdate(false, null, true, value);
        var result = await grains.GetGrain<IProfileGrain>(userId).SetAsync(update);

        var target = notifier.Current.Advance(StreamNames.Caches, 0, result.CachesPosition);
        foreach (var write in result.RoomWrites.Where(w => w.Position > 0)) target = target.Advance(StreamNames.Events, write.Writer, write.Position);
        await notifier.WaitForTokenAsync(target, ReadYourWritesTimeout, context.RequestAborted);
        return Results.Json(new JsonObject());
    }

    private static async Task<IResult> SearchUserDirectory(HttpContext context, UserDirectoryStore directory)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var body = JsonBody.Object(context.Request);
        var term = JsonBody.RequireString(body, "search_term");
        var limit = DefaultSearchLimit;
        if (body["limit"] is { } limitNode && (limitNode is not JsonValue lv || !lv.TryGetValue(out limit) || limit < 0))
            throw MatrixException.InvalidParam("'limit' must be a non-negative integer");
        limit = Math.Min(limit, 1000);
        var (results, limited) = await directory.SearchAsync(requester.UserId, term, limit);
        var array = new JsonArray();
        foreach (var r in results)
        {
            var item = new JsonObject { ["user_id"] = r.UserId };
            if (r.DisplayName is not null) item["display_name"] = r.DisplayName;
            if (r.AvatarUrl is not null) item["avatar_url"] = r.AvatarUrl;
            array.Add(item);
        }
        return Results.Json(new JsonObject { ["results"] = array, ["limited"] = limited });
    }

    private static async Task<UserProfile> LoadAsync(string rawUserId, ProfileStore store, string serverName)
    {
        var userId = RoomWrites.Segment(rawUserId);
        if (!Identifiers.TryParseUserId(userId, out _, out var server)) throw MatrixException.InvalidParam($"Invalid user id '{Quote.Short(userId)}'");
        if (server != serverName) throw MatrixException.NotFound("Profile was not found");
        return await store.GetAsync(userId) ?? throw MatrixException.NotFound("Profile was not found");
    }
}

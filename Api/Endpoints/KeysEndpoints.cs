using System.Text.Json.Nodes;
using Homeserver.Accounts;
using Homeserver.Api.Http;
using Homeserver.Errors;
using Homeserver.Keys;
using Homeserver.Matrix;
using Homeserver.Streams;
using Microsoft.Extensions.Options;

namespace Homeserver.Api.Endpoints;

/// <summary>
/// End-to-end encryption keys (spec: Client-Server API, "End-to-End Encryption" and "Cross-signing"). Writes go to the
/// user's <see cref="IDeviceKeysGrain"/>; reads come straight from the key tables.
/// </summary>
public static class KeysEndpoints
{
    private const string Prefix = "/_matrix/client/v3";
    private static readonly TimeSpan ReadYourWritesTimeout = TimeSpan.FromSeconds(10);

    public static IEndpointRouteBuilder MapKeysEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPost($"{Prefix}/keys/upload", UploadKeys);
        app.MapPost($"{Prefix}/keys/query", QueryKeys);
        app.MapPost($"{Prefix}/keys/claim", ClaimKeys);
        app.MapGet($"{Prefix}/keys/changes", GetKeysChanges);
        app.MapPost($"{Prefix}/keys/device_signing/upload", UploadCrossSigningKeys);
        app.MapPost($"{Prefix}/keys/signatures/upload", UploadCrossSigningSignatures);
        return app;
    }

    private static async Task<IResult> UploadKeys(HttpContext context, IGrainFactory grains, StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var body = JsonBody.Object(context.Request);

        string? deviceKeys = null;
        if (body.TryGetPropertyValue("device_keys", out var dk))
        {
            if (dk is not JsonObject keys) throw MatrixException.BadJson("'device_keys' must be an object");
            ValidateDeviceKeys(keys);
            if (JsonBody.RequireString(keys, "user_id") != requester.UserId)
                throw MatrixException.BadJson("Provided `user_id` in `device_keys` does not match that of the authenticated user");
            if (JsonBody.RequireString(keys, "device_id") != requester.DeviceId)
                throw MatrixException.BadJson("Provided `device_id` in `device_keys` does not match that of the authenticated user device");
            deviceKeys = keys.ToJsonString();
        }
        var oneTime = KeyMap(body, "one_time_keys");
        var fallback = KeyMap(body, "fallback_keys");

        var result = await grains.GetGrain<IDeviceKeysGrain>(requester.UserId)
            .UploadAsync(new KeyUpload(requester.DeviceId, deviceKeys, oneTime, fallback));
        await WaitAsync(notifier, result.Position, context.RequestAborted);
        return Results.Json(new JsonObject { ["one_time_key_counts"] = JsonNode.Parse(result.CountsJson) });
    }

    private static async Task<IResult> QueryKeys(HttpContext context, KeyRepository keys, IOptions<HomeserverOptions> options)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var body = JsonBody.Object(context.Request);
        if (body["device_keys"] is not JsonObject query) throw MatrixException.BadJson("'device_keys' must be a JSON object");
        var wanted = new Dictionary<string, HashSet<string>?>(StringComparer.Ordinal);
        foreach (var (userId, devices) in query)
        {
            if (devices is not JsonArray list || list.Any(d => d is not JsonValue v || !v.TryGetValue<string>(out _)))
                throw MatrixException.BadJson("'device_keys' values must be a list of strings");
            if (!Identifiers.TryParseUserId(userId, out _, out var server) || server != options.Value.ServerName) continue;
            wanted[userId] = list.Count == 0 ? null : list.Select(d => d!.GetValue<string>()).ToHashSet(StringComparer.Ordinal);
        }
        var users = wanted.Keys.ToList();
        var signatures = (await keys.GetSignaturesAsync(users))
            .Where(s => s.SignerUserId == s.TargetUserId || s.SignerUserId == requester.UserId)
            .ToLookup(s => (s.TargetUserId, s.TargetId));
        void AddSignatures(JsonObject key, string userId, string targetId)
        {
            foreach (var s in signatures[(userId, targetId)])
            {
                if (key["signatures"] is not JsonObject all) key["signatures"] = all = new JsonObject();
                if (all[s.SignerUserId] is not JsonObject mine) all[s.SignerUserId] = mine = new JsonObject();
                mine[s.SignerKeyId] = s.Signature;
            }
        }

        var deviceKeys = new JsonObject();
        foreach (var userId in users) deviceKeys[userId] = new JsonObject();
        foreach (var d in await keys.GetDeviceKeysAsync(users))
        {
            if (wanted[d.UserId] is { } only && !only.Contains(d.DeviceId)) continue;
            var key = (JsonObject)JsonNode.Parse(d.KeyJson)!;
            AddSignatures(key, d.UserId, d.DeviceId);
            // Always an unsigned object (clients look for it), with the device's name when it has one.
            if (key["unsigned"] is not JsonObject unsigned) key["unsigned"] = unsigned = new JsonObject();
            if (d.DisplayName is not null) unsigned["device_display_name"] = d.DisplayName;
            deviceKeys[d.UserId]![d.DeviceId] = key;
        }

        var master = new JsonObject();
        var selfSigning = new JsonObject();
        var userSigning = new JsonObject();
        foreach (var k in await keys.GetCrossSigningKeysAsync(users))
        {
            var key = (JsonObject)JsonNode.Parse(k.KeyJson)!;
            switch (k.KeyType)
            {
                case "master":
                    if (key["keys"] is JsonObject ks && ks.FirstOrDefault().Value is JsonValue pub && pub.TryGetValue<string>(out var publicKey))
                        AddSignatures(key, k.UserId, publicKey);
                    master[k.UserId] = key;
                    break;
                case "self_signing":
                    selfSigning[k.UserId] = key;
                    break;
                // Only its owner needs (or may see) the key they sign other users with.
                case "user_signing" when k.UserId == requester.UserId:
                    userSigning[k.UserId] = key;
                    break;
            }
        }
        return Results.Json(new JsonObject
        {
            ["device_keys"] = deviceKeys,
            ["master_keys"] = master,
            ["self_signing_keys"] = selfSigning,
            ["user_signing_keys"] = userSigning,
            ["failures"] = new JsonObject(),
        });
    }

    private static async Task<IResult> ClaimKeys(HttpContext context, IGrainFactory grains, IOptions<HomeserverOptions> options)
    {
        await RequestAuth.RequireUserAsync(context);
        var body = JsonBody.Object(context.Request);
        if (body["one_time_keys"] is not JsonObject query) throw MatrixException.BadJson("'one_time_keys' must be a JSON object");
        var claims = new Dictionary<string, KeyClaim[]>(StringComparer.Ordinal);
        foreach (var (userId, devices) in query)
        {
            if (devices is not JsonObject map) throw MatrixException.BadJson("'one_time_keys' values must be objects");
            var list = new List<KeyClaim>();
            foreach (var (deviceId, algorithm) in map)
            {
                if (algorithm is not JsonValue v || !v.TryGetValue<string>(out var alg))
                    throw MatrixException.BadJson("Algorithms to claim must be strings");
                list.Add(new KeyClaim(deviceId, alg));
            }
            if (Identifiers.TryParseUserId(userId, out _, out var server) && server == options.Value.ServerName) claims[userId] = list.ToArray();
        }
        var results = await Task.WhenAll(claims.Select(async c =>
            (c.Key, Json: await grains.GetGrain<IDeviceKeysGrain>(c.Key).ClaimAsync(c.Value))));
        var oneTimeKeys = new JsonObject();
        foreach (var (userId, json) in results)
            if (JsonNode.Parse(json) is JsonObject { Count: > 0 } claimed) oneTimeKeys[userId] = claimed;
        return Results.Json(new JsonObject { ["one_time_keys"] = oneTimeKeys, ["failures"] = new JsonObject() });
    }

    private static async Task<IResult> GetKeysChanges(HttpContext context, DeviceListStore lists, StreamNotifier notifier,
        ReplicationBarrier barrier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var fromText = context.Request.Query["from"].ToString();
        if (fromText.Length == 0) throw MatrixException.MissingParam("Missing 'from'");
        var from = StreamToken.Parse(fromText, "from");
        var toText = context.Request.Query["to"].ToString();
        StreamToken to;
        if (toText.Length > 0) to = StreamToken.Parse(toText, "to");
        else
        {
            // "Up to now" includes what other silos acknowledged before this request, as /sync does.
            await barrier.WaitAsync([StreamNames.Events, StreamNames.DeviceLists], ReadYourWritesTimeout, context.RequestAborted);
            to = notifier.Current;
        }
        var changes = await lists.GetChangesAsync(requester.UserId, from, to);
        return Results.Json(new JsonObject
        {
            ["changed"] = new JsonArray(changes.Changed.Select(u => (JsonNode)JsonValue.Create(u)!).ToArray()),
            ["left"] = new JsonArray(changes.Left.Select(u => (JsonNode)JsonValue.Create(u)!).ToArray()),
        });
    }

    private static async Task<IResult> UploadCrossSigningKeys(HttpContext context, IGrainFactory grains, UserInteractiveAuth uia,
        StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var body = JsonBody.Object(context.Request);
        var keys = new JsonObject();
        foreach (var name in new[] { "master_key", "self_signing_key", "user_signing_key" })
        {
            if (!body.TryGetPropertyValue(name, out var key) || key is null) continue;
            if (key is not JsonObject) throw MatrixException.BadJson($"'{name}' must be an object");
            keys[name] = key.DeepClone();
        }
        var grain = grains.GetGrain<IDeviceKeysGrain>(requester.UserId);
        var keysJson = keys.ToJsonString();
        switch (await grain.CheckSigningKeysUploadAsync(keysJson))
        {
            case SigningKeysUpload.Unchanged:
                return Results.Json(new JsonObject());
            case SigningKeysUpload.NeedsAuth:
                var challenge = await uia.CheckAsync(UiaSubmission.Parse(body), UserInteractiveAuth.Password,
                    UserInteractiveAuth.Operation(context.Request.Method, context.Request.Path, requester.UserId), requester.UserId);
                if (challenge is not null) return AccountEndpoints.Challenge(challenge);
                break;
        }
        var position = await grain.UploadSigningKeysAsync(keysJson);
        await WaitAsync(notifier, position, context.RequestAborted);
        return Results.Json(new JsonObject());
    }

    private static async Task<IResult> UploadCrossSigningSignatures(HttpContext context, IGrainFactory grains, StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var body = JsonBody.Object(context.Request);
        var result = await grains.GetGrain<IDeviceKeysGrain>(requester.UserId).UploadSignaturesAsync(body.ToJsonString());
        await WaitAsync(notifier, result.Position, context.RequestAborted);
        return Results.Content(result.ResponseJson, "application/json");
    }

    private static void ValidateDeviceKeys(JsonObject keys)
    {
        if (keys["algorithms"] is not JsonArray algorithms || algorithms.Any(a => a is not JsonValue v || !v.TryGetValue<string>(out _)))
            throw MatrixException.BadJson("'device_keys.algorithms' must be a list of strings");
        if (keys["keys"] is not JsonObject map || map.Any(kv => kv.Value is not JsonValue v || !v.TryGetValue<string>(out _)))
            throw MatrixException.BadJson("'device_keys.keys' must map key ids to strings");
        if (!IsSignatures(keys["signatures"])) throw MatrixException.BadJson("'device_keys.signatures' is malformed");
    }

    private static bool IsSignatures(JsonNode? node) =>
        node is JsonObject bySigner && bySigner.All(s => s.Value is JsonObject byKey
            && byKey.All(k => k.Value is JsonValue v && v.TryGetValue<string>(out _)));

    /// <summary>One-time or fallback keys: <c>"algorithm:key_id"</c> → a string or a signed key object.</summary>
    private static string? KeyMap(JsonObject body, string name)
    {
        if (!body.TryGetPropertyValue(name, out var node) || node is null) return null;
        if (node is not JsonObject map) throw MatrixException.BadJson($"'{name}' must be an object");
        foreach (var (id, key) in map)
        {
            if (id.Split(':').Length != 2) throw MatrixException.BadJson($"Invalid {name} key '{Quote.Short(id)}'. Expected \"<algorithm>:<key_id>\".");
            InputLimits.Identifier(id, $"A key id in {name}");
            var valid = key switch
            {
                JsonValue v => v.TryGetValue<string>(out _),
                JsonObject o => o["key"] is JsonValue k && k.TryGetValue<string>(out _) && IsSignatures(o["signatures"])
                    && (o["fallback"] is null || (o["fallback"] is JsonValue f && f.TryGetValue<bool>(out _))),
                _ => false,
            };
            if (!valid) throw MatrixException.BadJson($"Invalid key object for '{Quote.Short(id)}' in {name}");
        }
        return map.Count == 0 ? null : map.ToJsonString();
    }

    private static async Task WaitAsync(StreamNotifier notifier, long position, CancellationToken ct)
    {
        if (position <= 0) return;
        await notifier.WaitForTokenAsync(notifier.Current.Advance(StreamNames.DeviceLists, DeviceListRows.Writer, position),
            ReadYourWritesTimeout, ct);
    }
}

using System.Text.Json.Nodes;
using Homeserver.Api.Http;
using Homeserver.Errors;
using Homeserver.PushRules;
using Homeserver.Streams;

namespace Homeserver.Api.Endpoints;

/// <summary>
/// Push rules (spec: Client-Server API, "Push rules: API"). Reads merge the server defaults with the user's rules on
/// this silo; writes go through the user's <see cref="IPushRulesGrain"/> and reach /sync as <c>m.push_rules</c>.
/// </summary>
public static class PushRuleEndpoints
{
    private const string Prefix = RoomEndpoints.Prefix + "/pushrules";

    public static IEndpointRouteBuilder MapPushRuleEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapGet($"{Prefix}/", GetPushRules);
        app.MapGet($"{Prefix}/global/", GetPushRulesGlobal);
        app.MapGet($"{Prefix}/global/{{kind}}/{{ruleId}}", GetPushRule);
        app.MapPut($"{Prefix}/global/{{kind}}/{{ruleId}}", SetPushRule);
        app.MapDelete($"{Prefix}/global/{{kind}}/{{ruleId}}", DeletePushRule);
        app.MapGet($"{Prefix}/global/{{kind}}/{{ruleId}}/enabled", IsPushRuleEnabled);
        app.MapPut($"{Prefix}/global/{{kind}}/{{ruleId}}/enabled", SetPushRuleEnabled);
        app.MapGet($"{Prefix}/global/{{kind}}/{{ruleId}}/actions", GetPushRuleActions);
        app.MapPut($"{Prefix}/global/{{kind}}/{{ruleId}}/actions", SetPushRuleActions);
        return app;
    }

    private static async Task<IResult> GetPushRules(HttpContext context, PushRulesStore store)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        return Results.Json(new JsonObject { ["global"] = await store.GetRulesetAsync(requester.UserId) });
    }

    private static async Task<IResult> GetPushRulesGlobal(HttpContext context, PushRulesStore store)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        return Results.Json(await store.GetRulesetAsync(requester.UserId));
    }

    private static async Task<IResult> GetPushRule(HttpContext context, string kind, string ruleId, PushRulesStore store) =>
        Results.Json((await FindAsync(context, kind, ruleId, store)).DeepClone());

    private static async Task<IResult> IsPushRuleEnabled(HttpContext context, string kind, string ruleId, PushRulesStore store) =>
        Results.Json(new JsonObject { ["enabled"] = (await FindAsync(context, kind, ruleId, store))["enabled"]?.DeepClone() });

    private static async Task<IResult> GetPushRuleActions(HttpContext context, string kind, string ruleId, PushRulesStore store) =>
        Results.Json(new JsonObject { ["actions"] = (await FindAsync(context, kind, ruleId, store))["actions"]?.DeepClone() });

    private static async Task<IResult> SetPushRule(HttpContext context, string kind, string ruleId, IGrainFactory grains, StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var body = JsonBody.Object(context.Request);
        var before = Query(context, "before");
        var after = Query(context, "after");
        var position = await Grain(grains, requester.UserId).PutRuleAsync(kind, RoomWrites.Segment(ruleId), body.ToJsonString(), before, after);
        return await DoneAsync(notifier, position, context);
    }

    private static async Task<IResult> DeletePushRule(HttpContext context, string kind, string ruleId, IGrainFactory grains, StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var position = await Grain(grains, requester.UserId).DeleteRuleAsync(kind, RoomWrites.Segment(ruleId));
        return await DoneAsync(notifier, position, context);
    }

    private static async Task<IResult> SetPushRuleEnabled(HttpContext context, string kind, string ruleId, IGrainFactory grains, StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var body = JsonBody.Object(context.Request);
        if (body["enabled"] is not JsonValue v || !v.TryGetValue<bool>(out var enabled))
            throw MatrixException.BadJson("'enabled' must be a boolean");
        var position = await Grain(grains, requester.UserId).SetEnabledAsync(kind, RoomWrites.Segment(ruleId), enabled);
        return await DoneAsync(notifier, position, context);
    }

    private static async Task<IResult> SetPushRuleActions(HttpContext context, string kind, string ruleId, IGrainFactory grains, StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var body = JsonBody.Object(context.Request);
        if (body["actions"] is not JsonArray actions) throw MatrixException.BadJson("'actions' must be a list");
        var position = await Grain(grains, requester.UserId).SetActionsAsync(kind, RoomWrites.Segment(ruleId), actions.ToJsonString());
        return await DoneAsync(notifier, position, context);
    }

    private static async Task<JsonObject> FindAsync(HttpContext context, string kind, string ruleId, PushRulesStore store)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        PushRuleDocument.ValidateKind(kind);
        var id = RoomWrites.Segment(ruleId);
        var ruleset = await store.GetRulesetAsync(requester.UserId);
        return ruleset[kind]!.AsArray().OfType<JsonObject>().FirstOrDefault(r => r["rule_id"]?.GetValue<string>() == id)
            ?? throw MatrixException.NotFound("Unknown push rule");
    }

    private static IPushRulesGrain Grain(IGrainFactory grains, string userId) => grains.GetGrain<IPushRulesGrain>(userId);

    private static string? Query(HttpContext context, string name)
    {
        var value = context.Request.Query[name].ToString();
        return string.IsNullOrEmpty(value) ? null : value;
    }

    private static async Task<IResult> DoneAsync(StreamNotifier notifier, long position, HttpContext context)
    {
        await UserStreamWrites.WaitAsync(notifier, StreamNames.PushRules, position, context.RequestAborted);
        return Results.Json(new JsonObject());
    }
}

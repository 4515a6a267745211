using System.Text.Json.Nodes;
using Homeserver.Api.Http;
using Homeserver.Errors;
using Homeserver.PushRules;
using Homeserver.Streams;

namespace Homeserver.Api.Endpoints;

/// <summary>
/// Push rules (spec: Client-Server API, "Push rules: API"). Reads merge the server defaults with the user's rules on
/// this silo; writes go through the user's <see cref="IPushRulesGrain"/> and reach /sync as <c>m.push_rules</c>.
/// Everything under <c>/pushrules/</c> is one path read segment by segment (<see cref="PushRulePath"/>), as Synapse
/// does: a missing or unknown scope, kind or attribute is 400, an unknown rule 404, and <c>/pushrules</c> without its
/// trailing slash is no endpoint at all (404).
/// </summary>
public static class PushRuleEndpoints
{
    private const string Prefix = RoomEndpoints.Prefix + "/pushrules";

    public static IEndpointRouteBuilder MapPushRuleEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapGet($"{Prefix}/{{**path}}", GetAsync);
        app.MapPut($"{Prefix}/{{**path}}", PutAsync);
        app.MapDelete($"{Prefix}/{{**path}}", DeleteAsync);
        return app;
    }

    private static async Task<IResult> GetAsync(HttpContext context, PushRulesStore store)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var parts = PushRulePath.Parts(context);
        var ruleset = await store.GetRulesetAsync(requester.UserId);
        if (parts[0] == "") return Results.Json(new JsonObject { ["global"] = ruleset });
        if (parts[0] != PushRulePath.GlobalScope) throw PushRulePath.Unrecognized($"Unknown push rule scope '{Quote.Short(parts[0])}'");
        return Results.Json(PushRulePath.Select(ruleset, parts[1..]));
    }

    private static async Task<IResult> PutAsync(HttpContext context, IGrainFactory grains, StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var rule = PushRulePath.Rule(context);
        var body = JsonBody.Object(context.Request);
        var rules = grains.GetGrain<IPushRulesGrain>(requester.UserId);
        var position = rule.Attribute switch
        {
            null => await rules.PutRuleAsync(rule.Kind, rule.RuleId, body.ToJsonString(), Query(context, "before"), Query(context, "after")),
            "enabled" => await rules.SetEnabledAsync(rule.Kind, rule.RuleId,
                body["enabled"] is JsonValue v && v.TryGetValue<bool>(out var enabled) ? enabled : throw MatrixException.BadJson("'enabled' must be a boolean")),
            "actions" => await rules.SetActionsAsync(rule.Kind, rule.RuleId,
                body["actions"] is JsonArray actions ? actions.ToJsonString() : throw MatrixException.BadJson("'actions' must be a list")),
            _ => throw PushRulePath.Unrecognized($"Unknown push rule attribute '{Quote.Short(rule.Attribute)}'"),
        };
        return await DoneAsync(notifier, position, context);
    }

    private static async Task<IResult> DeleteAsync(HttpContext context, IGrainFactory grains, StreamNotifier notifier)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var rule = PushRulePath.Rule(context);
        if (rule.Attribute is not null) throw PushRulePath.Unrecognized("A push rule's attributes cannot be deleted");
        var position = await grains.GetGrain<IPushRulesGrain>(requester.UserId).DeleteRuleAsync(rule.Kind, rule.RuleId);
        return await DoneAsync(notifier, position, context);
    }

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

/// <summary>The path under <c>/pushrules/</c>: <c>{scope}/{kind}/{ruleId}[/{attribute}]</c>, or a prefix of it for reads.</summary>
public static class PushRulePath
{
    public const string GlobalScope = "global";

    public sealed record RuleSpec(string Kind, string RuleId, string? Attribute);

    public static MatrixException Unrecognized(string message) => new(ErrorCodes.Unrecognized, message, 400);

    /// <summary>The segments after <c>/pushrules/</c>, each decoded (<c>%2F</c> included); at least one, empty for
    /// <c>/pushrules/</c> itself. <c>/pushrules</c> without the slash is not an endpoint.</summary>
    public static string[] Parts(HttpContext context)
    {
        var path = context.Request.Path.Value ?? "";
        var at = path.IndexOf("/pushrules", StringComparison.Ordinal);
        var rest = at < 0 ? "" : path[(at + "/pushrules".Length)..];
        if (!rest.StartsWith('/')) throw new MatrixException(ErrorCodes.Unrecognized, "Unrecognized request", 404);
        return rest[1..].Split('/').Select(RoomWrites.Segment).ToArray();
    }

    /// <summary>The rule a write names; 400 when the path names none.</summary>
    public static RuleSpec Rule(HttpContext context)
    {
        var parts = Parts(context);
        if (parts[0] != GlobalScope)
            throw Unrecognized(parts[0] == "" ? "A push rule scope is required" : $"Unknown push rule scope '{Quote.Short(parts[0])}'");
        if (parts.Length < 2 || parts[1] == "") throw Unrecognized("A push rule kind is required");
        PushRuleDocument.ValidateKind(parts[1]);
        if (parts.Length < 3 || parts[2] == "") throw Unrecognized("A push rule id is required");
        if (parts.Length > 4 || (parts.Length == 4 && parts[3] == "")) throw Unrecognized("Unrecognized request");
        PushRuleDocument.ValidateRuleId(parts[2]);
        return new RuleSpec(parts[1], parts[2], parts.Length == 4 ? parts[3] : null);
    }

    /// <summary>What a read of <c>global/…</c> returns: the ruleset (<c>global/</c>), one kind's rules
    /// (<c>global/{kind}/</c>), one rule, or one of its attributes as <c>{attribute: value}</c>.</summary>
    public static JsonNode Select(JsonObject ruleset, string[] path)
    {
        const string slash = "Push rule paths end with a slash where they name a collection";
        if (path.Length == 0) throw Unrecognized(slash);
        if (path[0] == "") return ruleset;
        PushRuleDocument.ValidateKind(path[0]);
        var rules = ruleset[path[0]]!.AsArray();
        if (path.Length == 1) throw Unrecognized(slash);
        if (path[1] == "") return rules;
        var rule = rules.OfType<JsonObject>().FirstOrDefault(r => r["rule_id"]?.GetValue<string>() == path[1])
            ?? throw MatrixException.NotFound("Unknown push rule");
        if (path.Length == 2) return rule;
        if (path.Length == 3 && path[2] is "enabled" or "actions")
            return new JsonObject { [path[2]] = rule[path[2]]?.DeepClone() };
        throw Unrecognized($"Unknown push rule attribute '{Quote.Short(string.Join('/', path[2..]))}'");
    }
}

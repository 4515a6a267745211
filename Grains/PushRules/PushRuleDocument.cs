using System.Text.Json.Nodes;
using Homeserver.Errors;
using Homeserver.Matrix;

namespace Homeserver.PushRules;

/// <summary>
/// One user's push rules as stored: the user's own rules per kind in priority order, and their changes
/// (<c>enabled</c>, <c>actions</c>) to server-default rules. <see cref="Merge"/> produces the ruleset clients see:
/// per kind, Synapse's order — override: <c>.m.rule.master</c>, the user's overrides, the other defaults; every other
/// kind: the user's rules, then the defaults.
/// </summary>
public sealed class PushRuleDocument
{
    public static readonly string[] Kinds = ["override", "content", "room", "sender", "underride"];
    private static readonly string[] Actions = ["notify", "dont_notify", "coalesce", "on_change"];

    private readonly JsonObject _doc;

    private PushRuleDocument(JsonObject doc) => _doc = doc;

    public static PushRuleDocument Empty() => Parse(null);

    public static PushRuleDocument Parse(string? json)
    {
        var doc = json is null ? new JsonObject() : JsonNode.Parse(json)!.AsObject();
        foreach (var kind in Kinds) if (doc[kind] is not JsonArray) doc[kind] = new JsonArray();
        if (doc["defaults"] is not JsonObject) doc["defaults"] = new JsonObject();
        return new PushRuleDocument(doc);
    }

    public string Serialize() => _doc.ToJsonString();

    public static void ValidateKind(string kind)
    {
        if (!Kinds.Contains(kind)) throw MatrixException.InvalidParam($"Unknown push rule kind '{Quote.Short(kind)}'");
    }

    public static void ValidateRuleId(string ruleId)
    {
        if (ruleId.Length == 0 || ruleId.Contains('/') || ruleId.Contains('\\'))
            throw MatrixException.InvalidParam("rule_id may not be empty or contain slashes");
    }

    private JsonArray UserRules(string kind) => _doc[kind]!.AsArray();
    private JsonObject DefaultChanges => _doc["defaults"]!.AsObject();

    private static int IndexOf(JsonArray rules, string ruleId)
    {
        for (var i = 0; i < rules.Count; i++)
            if (rules[i]?["rule_id"]?.GetValue<string>() == ruleId) return i;
        return -1;
    }

    /// <summary>Adds or replaces a user rule; without before/after it takes the highest priority, as in Synapse.</summary>
    public void Put(string kind, string ruleId, JsonObject body, string? before, string? after)
    {
        ValidateKind(kind);
        ValidateRuleId(ruleId);
        if (ruleId.StartsWith('.')) throw MatrixException.InvalidParam("Rule ids starting with '.' are reserved for server-default rules");
        var rule = new JsonObject { ["rule_id"] = ruleId, ["default"] = false, ["enabled"] = true, ["actions"] = ValidateActions(body["actions"]) };
        switch (kind)
        {
            case "override" or "underride":
                var conditions = body["conditions"] ?? throw MatrixException.BadJson($"An {kind} rule needs 'conditions'");
                if (conditions is not JsonArray list || list.Any(c => c is not JsonObject o || o["kind"] is not JsonValue))
                    throw MatrixException.BadJson("'conditions' must be a list of objects with a 'kind'");
                rule["conditions"] = list.DeepClone();
                break;
            case "content":
                if (body["pattern"] is not JsonValue p || !p.TryGetValue<string>(out var pattern))
                    throw MatrixException.BadJson("A content rule needs a string 'pattern'");
                rule["pattern"] = pattern;
                break;
            case "room":
                rule["conditions"] = new JsonArray(new JsonObject { ["kind"] = "event_match", ["key"] = "room_id", ["pattern"] = ruleId });
                break;
            case "sender":
                rule["conditions"] = new JsonArray(new JsonObject { ["kind"] = "event_match", ["key"] = "user_id", ["pattern"] = ruleId });
                break;
        }

        var rules = UserRules(kind);
        var anchor = before ?? after;
        if (anchor is not null && (anchor == ruleId || IndexOf(rules, anchor) < 0))
            throw MatrixException.InvalidParam($"No other user rule '{Quote.Short(anchor)}' of kind '{Quote.Short(kind)}' to order against");
        var existing = IndexOf(rules, ruleId);
        if (existing >= 0) rules.RemoveAt(existing);
        var index = 0;
        if (anchor is not null)
        {
            var at = IndexOf(rules, anchor);
            index = before is not null ? at : at + 1;
        }
        rules.Insert(index, rule);
    }

    /// <summary>Copies every user rule naming <paramref name="fromRoomId"/> (the room rule with its id, or a rule with an
    /// <c>event_match</c> on <c>room_id</c>) to <paramref name="toRoomId"/>, right before the original, the room's id
    /// replaced in the rule's id too; as in Synapse, a rule whose id does not name the room moves to the new room, and
    /// one whose new id is taken is left alone. True when a rule was copied.</summary>
    public bool CopyRoomRules(string fromRoomId, string toRoomId)
    {
        var copied = false;
        foreach (var kind in Kinds)
        {
            var rules = UserRules(kind);
            for (var i = 0; i < rules.Count; i++)
            {
                if (rules[i] is not JsonObject rule || rule["conditions"] is not JsonArray conditions) continue;
                bool NamesRoom(JsonNode? c) => c is JsonObject o && RoomState.GetString(o, "kind") == "event_match"
                                                && RoomState.GetString(o, "key") == "room_id" && RoomState.GetString(o, "pattern") == fromRoomId;
                if (!conditions.Any(NamesRoom)) continue;
                var oldId = rule["rule_id"]!.GetValue<string>();
                var ruleId = oldId.Replace(fromRoomId, toRoomId, StringComparison.Ordinal);
                if (ruleId != oldId && IndexOf(rules, ruleId) >= 0) continue;
                var copy = rule.DeepClone().AsObject();
                copy["rule_id"] = ruleId;
                foreach (var c in copy["conditions"]!.AsArray())
                    if (NamesRoom(c)) c!["pattern"] = toRoomId;
                if (ruleId == oldId) rules[i] = copy; // an id that does not name the room: the rule moves with it
                else rules.Insert(i++, copy);
                copied = true;
            }
        }
        return copied;
    }

    /// <summary>Deletes a user rule. Server-default rules are not the user's to delete: like Synapse, 404.</summary>
    public void Delete(string kind, string ruleId)
    {
        ValidateKind(kind);
        var rules = UserRules(kind);
        var at = IndexOf(rules, ruleId);
        if (at < 0) throw MatrixException.NotFound("Unknown push rule");
        rules.RemoveAt(at);
    }

    public void SetEnabled(string kind, string ruleId, bool enabled) => Change(kind, ruleId, "enabled", JsonValue.Create(enabled));

    public void SetActions(string kind, string ruleId, JsonNode? actions) => Change(kind, ruleId, "actions", ValidateActions(actions));

    private void Change(string kind, string ruleId, string attribute, JsonNode value)
    {
        ValidateKind(kind);
        var rules = UserRules(kind);
        var at = IndexOf(rules, ruleId);
        if (at >= 0)
        {
            rules[at]![attribute] = value;
            return;
        }
        // Which rules are defaults does not depend on the user.
        if (IndexOf(DefaultPushRules.For("@any:localhost")["global"]![kind]!.AsArray(), ruleId) < 0)
            throw MatrixException.NotFound("Unknown push rule");
        if (DefaultChanges[ruleId] is not JsonObject change) DefaultChanges[ruleId] = change = new JsonObject();
        change[attribute] = value;
    }

    private static JsonArray ValidateActions(JsonNode? actions)
    {
        if (actions is not JsonArray list) throw MatrixException.BadJson("'actions' must be a list");
        foreach (var action in list)
        {
            var ok = action switch
            {
                JsonValue v when v.TryGetValue<string>(out var s) => Actions.Contains(s),
                JsonObject o => o["set_tweak"] is JsonValue t && t.TryGetValue<string>(out _),
                _ => false,
            };
            if (!ok) throw MatrixException.InvalidParam($"Unrecognised action {action?.ToJsonString()}");
        }
        return (JsonArray)list.DeepClone();
    }

    /// <summary>The <c>global</c> ruleset the client sees: defaults with the user's changes, merged with the user's rules.</summary>
    public JsonObject Merge(string userId)
    {
        var defaults = DefaultPushRules.For(userId)["global"]!.AsObject();
        var result = new JsonObject();
        foreach (var kind in Kinds)
        {
            var merged = new JsonArray();
            var defaultRules = defaults[kind]!.AsArray().Select(r => Changed(r!.AsObject())).ToList();
            var prepend = kind == "override" ? defaultRules.TakeWhile(r => r["rule_id"]!.GetValue<string>() == ".m.rule.master").ToList() : [];
            foreach (var r in prepend) merged.Add(r);
            foreach (var r in UserRules(kind)) merged.Add(r!.DeepClone());
            foreach (var r in defaultRules.Skip(prepend.Count)) merged.Add(r);
            result[kind] = merged;
        }
        return result;
    }

    private JsonObject Changed(JsonObject defaultRule)
    {
        var rule = defaultRule.DeepClone().AsObject();
        if (DefaultChanges[rule["rule_id"]!.GetValue<string>()] is JsonObject change)
            foreach (var (k, v) in change) rule[k] = v?.DeepClone();
        return rule;
    }
}

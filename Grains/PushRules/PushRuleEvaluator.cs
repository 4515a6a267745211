using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Homeserver.Matrix;
using Homeserver.Rooms;

namespace Homeserver.PushRules;

/// <summary>What the first matching rule says to do with an event for one user (spec "Push rules" → "Actions").</summary>
/// <param name="ActionsJson">The rule's actions as the client set them, for <c>GET /notifications</c>.</param>
public sealed record PushActions(bool Notify, bool Highlight, string RuleId, string ActionsJson);

/// <summary>What the conditions read about the room the event is in, as of now.</summary>
public sealed record PushRoomContext(int JoinedMembers, PowerLevels PowerLevels)
{
    public static PushRoomContext Of(CurrentRoomState state) => new(state.JoinedMemberCount, state.PowerLevels);
}

/// <summary>
/// One user's push rules (the merged ruleset of <see cref="PushRuleDocument.Merge"/>) compiled once for evaluation:
/// enabled rules in the spec's priority order (override, content, room, sender, underride), each rule's globs parsed
/// into <see cref="PushGlob"/>s. <see cref="Evaluate"/> is the spec's algorithm: the first rule whose conditions all hold
/// decides; an unknown condition kind never holds, so a rule the server does not understand never fires.
/// </summary>
public sealed class CompiledPushRules
{
    private readonly Rule[] _rules;
    private readonly string _userId;

    private CompiledPushRules(string userId, Rule[] rules) => (_userId, _rules) = (userId, rules);

    public static CompiledPushRules Compile(string userId, JsonObject merged)
    {
        var rules = new List<Rule>();
        foreach (var kind in PushRuleDocument.Kinds)
        {
            if (merged[kind] is not JsonArray list) continue;
            foreach (var node in list)
            {
                if (node is not JsonObject rule || rule["enabled"] is JsonValue e && e.TryGetValue<bool>(out var enabled) && !enabled) continue;
                var ruleId = rule["rule_id"] is JsonValue id && id.TryGetValue<string>(out var s) ? s : "";
                var conditions = kind switch
                {
                    // Content rules are a glob over the body instead of conditions.
                    "content" => rule["pattern"] is JsonValue p && p.TryGetValue<string>(out var pattern)
                        ? [new EventMatch("content.body", pattern)]
                        : new Condition[] { Never.Instance },
                    _ => (rule["conditions"] as JsonArray ?? []).Select(c => ParseCondition(c as JsonObject)).ToArray(),
                };
                var actions = rule["actions"] as JsonArray ?? [];
                rules.Add(new Rule(ruleId, conditions, NotifiesBy(actions), HighlightsBy(actions), actions.ToJsonString()));
            }
        }
        return new CompiledPushRules(userId, rules.ToArray());
    }

    /// <summary>
    /// No other member's membership event can notify this user: of the rules before <c>.m.rule.member_event</c>
    /// (which does not notify), none that notifies could match one. Only the defaults are known to hold there
    /// (<c>.m.rule.master</c> and <c>.m.rule.suppress_notices</c> do not notify, <c>.m.rule.invite_for_me</c> matches
    /// the user's own membership only); any other notifying rule first, or the member rule changed, says false.
    /// Counting unread events may then leave such events unread from the database (in a big room most of them).
    /// </summary>
    public bool OthersMembershipsNeverNotify => _othersMembershipsNeverNotify ??= ComputeOthersMembershipsNeverNotify();

    private bool? _othersMembershipsNeverNotify;

    private bool ComputeOthersMembershipsNeverNotify()
    {
        foreach (var rule in _rules)
        {
            if (rule.RuleId == ".m.rule.member_event") return !rule.Notify && !rule.Highlight;
            if ((rule.Notify || rule.Highlight) && rule.RuleId != ".m.rule.invite_for_me") return false;
        }
        return false;
    }

    /// <summary>The actions for <paramref name="ev"/> in a room as it is now (its member count and power levels, the
    /// user's display name there).</summary>
    public PushActions? Evaluate(StoredEvent ev, CurrentRoomState room) =>
        Evaluate(ev, PushRoomContext.Of(room), room.DisplayName(_userId));

    /// <summary>The actions for <paramref name="ev"/>, or null when no rule matches (nothing to do). The user's own events are
    /// never evaluated: nobody is notified of what they sent.</summary>
    public PushActions? Evaluate(StoredEvent ev, PushRoomContext room, string? displayName)
    {
        if (ev.Sender == _userId) return null;
        var view = new EventView(Parsed(ev), ev, _userId, displayName, room);
        foreach (var rule in _rules)
        {
            var matches = true;
            foreach (var condition in rule.Conditions)
                if (!condition.Holds(view)) { matches = false; break; }
            if (matches) return new PushActions(rule.Notify, rule.Highlight, rule.RuleId, rule.ActionsJson);
        }
        return null;
    }

    private static bool NotifiesBy(JsonArray actions) =>
        actions.Any(a => a is JsonValue v && v.TryGetValue<string>(out var s) && s is "notify" or "coalesce");

    private static bool HighlightsBy(JsonArray actions) =>
        actions.Any(a => a is JsonObject t && t["set_tweak"] is JsonValue k && k.TryGetValue<string>(out var tweak) && tweak == "highlight"
                         && (t["value"] is not JsonValue value || !value.TryGetValue<bool>(out var on) || on));

    private static Condition ParseCondition(JsonObject? c)
    {
        string? Str(string name) => c is null ? null : RoomState.GetString(c, name);
        return Str("kind") switch
        {
            "event_match" when Str("key") is { } key && Str("pattern") is { } pattern => new EventMatch(key, pattern),
            "event_property_is" when Str("key") is { } key && c!["value"] is JsonValue value => new PropertyIs(key, ScalarOf(value)),
            "event_property_contains" when Str("key") is { } key && c!["value"] is JsonValue value => new PropertyContains(key, ScalarOf(value)),
            "contains_display_name" => new ContainsDisplayName(),
            "room_member_count" when Str("is") is { } @is && MemberCount.TryParse(@is) is { } count => count,
            "sender_notification_permission" when Str("key") is { } key => new SenderNotificationPermission(key),
            _ => Never.Instance,
        };
    }

    private static JsonElement ScalarOf(JsonValue value) => JsonDocument.Parse(value.ToJsonString()).RootElement.Clone();

    // Every member's evaluation of one event reads the same parsed JSON: events come from RecentRoomEvents, which
    // hands every reader the same instances.
    private static readonly ConditionalWeakTable<StoredEvent, StrongBox<JsonElement>> ParsedEvents = new();

    private static JsonElement Parsed(StoredEvent ev) =>
        ParsedEvents.GetValue(ev, static e =>
        {
            using var doc = JsonDocument.Parse(e.Utf8Json);
            return new StrongBox<JsonElement>(doc.RootElement.Clone());
        }).Value;

    private sealed record Rule(string RuleId, Condition[] Conditions, bool Notify, bool Highlight, string ActionsJson);

    private readonly record struct EventView(JsonElement Json, StoredEvent Event, string UserId, string? DisplayName, PushRoomContext Room)
    {
        /// <summary>The value at a dotted key, where <c>\.</c> is a literal dot and <c>\\</c> a backslash (spec "Conditions").</summary>
        public JsonElement? At(string key)
        {
            var current = Json;
            foreach (var part in SplitKey(key))
            {
                if (current.ValueKind != JsonValueKind.Object || !current.TryGetProperty(part, out var next)) return null;
                current = next;
            }
            return current;
        }

        public string? Body => At("content.body") is { ValueKind: JsonValueKind.String } b ? b.GetString() : null;
    }

    private static readonly ConcurrentDictionary<string, string[]> KeyParts = new();

    // The count (which takes every lock of the dictionary) only on a miss: every condition of every rule asks.
    private static string[] SplitKey(string key) =>
        KeyParts.TryGetValue(key, out var parts) ? parts : KeyParts.Count < 10_000 ? KeyParts.GetOrAdd(key, Split) : Split(key);

    private static string[] Split(string key)
    {
        var parts = new List<string>();
        var part = new StringBuilder();
        for (var i = 0; i < key.Length; i++)
        {
            if (key[i] == '\\' && i + 1 < key.Length && key[i + 1] is '.' or '\\') part.Append(key[++i]);
            else if (key[i] == '.') { parts.Add(part.ToString()); part.Clear(); }
            else part.Append(key[i]);
        }
        parts.Add(part.ToString());
        return parts.ToArray();
    }

    private abstract class Condition
    {
        public abstract bool Holds(in EventView ev);
    }

    private sealed class Never : Condition
    {
        public static readonly Never Instance = new();
        public override bool Holds(in EventView ev) => false;
    }

    /// <summary>A glob over a string value: over <c>content.body</c> it matches whole words anywhere in the body (as
    /// Synapse does), over any other key the whole value. Case-insensitive.</summary>
    private sealed class EventMatch(string key, string pattern) : Condition
    {
        private readonly PushGlob _glob = new(pattern, wordBoundary: key == "content.body");

        public override bool Holds(in EventView ev) => ev.At(key) is { ValueKind: JsonValueKind.String } v && _glob.IsMatch(v.GetString()!);
    }

    private sealed class PropertyIs(string key, JsonElement value) : Condition
    {
        public override bool Holds(in EventView ev) => ev.At(key) is { } v && ScalarEquals(v, value);
    }

    private sealed class PropertyContains(string key, JsonElement value) : Condition
    {
        public override bool Holds(in EventView ev)
        {
            if (ev.At(key) is not { ValueKind: JsonValueKind.Array } array) return false;
            foreach (var item in array.EnumerateArray())
                if (ScalarEquals(item, value)) return true;
            return false;
        }
    }

    private static bool ScalarEquals(JsonElement a, JsonElement b) => (a.ValueKind, b.ValueKind) switch
    {
        (JsonValueKind.String, JsonValueKind.String) => a.GetString() == b.GetString(),
        (JsonValueKind.Number, JsonValueKind.Number) => a.TryGetInt64(out var x) && b.TryGetInt64(out var y) && x == y,
        (JsonValueKind.True, JsonValueKind.True) or (JsonValueKind.False, JsonValueKind.False) or (JsonValueKind.Null, JsonValueKind.Null) => true,
        _ => false,
    };

    private sealed class ContainsDisplayName : Condition
    {
        public override bool Holds(in EventView ev) =>
            !string.IsNullOrWhiteSpace(ev.DisplayName) && ev.Body is { } body
            && PushGlob.ContainsWords(body, ev.DisplayName);
    }

    private sealed class MemberCount(string op, long count) : Condition
    {
        public static MemberCount? TryParse(string @is)
        {
            var op = new string(@is.TakeWhile(ch => ch is '=' or '<' or '>').ToArray());
            if (op is not ("" or "==" or "<" or ">" or "<=" or ">=")) return null;
            return long.TryParse(@is[op.Length..], out var n) ? new MemberCount(op, n) : null;
        }

        public override bool Holds(in EventView ev)
        {
            long members = ev.Room.JoinedMembers;
            return op switch { "<" => members < count, ">" => members > count, "<=" => members <= count, ">=" => members >= count, _ => members == count };
        }
    }

    private sealed class SenderNotificationPermission(string key) : Condition
    {
        public override bool Holds(in EventView ev) =>
            ev.Room.PowerLevels.GetUserLevel(ev.Event.Sender) >= ev.Room.PowerLevels.GetNotificationLevel(key);
    }
}

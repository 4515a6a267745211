using System.Text.Json.Nodes;

namespace Homeserver.Matrix;

/// <summary>
/// The server-default push rules (spec Client-Server API, "Push rules" → "Predefined rules", v1.11), in the shape
/// of the <c>GET /pushrules/</c> body. Order within each kind is priority order, so it follows the spec's listing.
/// </summary>
public static class DefaultPushRules
{
    public static JsonObject For(string userId)
    {
        var localpart = Identifiers.TryParseUserId(userId, out var l, out _) ? l : userId.TrimStart('@');
        return new JsonObject
        {
            ["global"] = new JsonObject
            {
                ["override"] = Override(userId),
                ["content"] = new JsonArray(ContainsUserName(localpart)),
                ["room"] = new JsonArray(),
                ["sender"] = new JsonArray(),
                ["underride"] = Underride(),
            },
        };
    }

    private static JsonArray Override(string userId) =>
    [
        Rule(".m.rule.master", enabled: false, []),
        Rule(".m.rule.suppress_notices", [EventMatch("content.msgtype", "m.notice")]),
        Rule(".m.rule.invite_for_me",
            [EventMatch("type", "m.room.member"), EventMatch("content.membership", "invite"), EventMatch("state_key", userId)],
            Notify(), Sound("default")),
        Rule(".m.rule.member_event", [EventMatch("type", "m.room.member")]),
        Rule(".m.rule.is_user_mention",
            [new JsonObject { ["kind"] = "event_property_contains", ["key"] = "content.m\\.mentions.user_ids", ["value"] = userId }],
            Notify(), Sound("default"), Highlight()),
        Rule(".m.rule.contains_display_name",
            [new JsonObject { ["kind"] = "contains_display_name" }],
            Notify(), Sound("default"), Highlight()),
        Rule(".m.rule.is_room_mention",
            [new JsonObject { ["kind"] = "event_property_is", ["key"] = "content.m\\.mentions.room", ["value"] = true }, SenderNotificationPermission("room")],
            Notify(), Highlight()),
        Rule(".m.rule.roomnotif",
            [EventMatch("content.body", "@room"), SenderNotificationPermission("room")],
            Notify(), Highlight()),
        Rule(".m.rule.tombstone",
            [EventMatch("type", "m.room.tombstone"), EventMatch("state_key", "")],
            Notify(), Highlight()),
        Rule(".m.rule.reaction", [EventMatch("type", "m.reaction")]),
        Rule(".m.rule.room.server_acl", [EventMatch("type", "m.room.server_acl"), EventMatch("state_key", "")]),
        Rule(".m.rule.suppress_edits",
            [new JsonObject { ["kind"] = "event_property_is", ["key"] = "content.m\\.relates_to.rel_type", ["value"] = "m.replace" }]),
    ];

    // Content rules carry a glob pattern over content.body instead of conditions.
    private static JsonObject ContainsUserName(string localpart) => new()
    {
        ["rule_id"] = ".m.rule.contains_user_name",
        ["default"] = true,
        ["enabled"] = true,
        ["pattern"] = localpart,
        ["actions"] = new JsonArray(Notify(), Sound("default"), Highlight()),
    };

    private static JsonArray Underride() =>
    [
        Rule(".m.rule.call", [EventMatch("type", "m.call.invite")], Notify(), Sound("ring")),
        Rule(".m.rule.encrypted_room_one_to_one", [MemberCount("2"), EventMatch("type", "m.room.encrypted")], Notify(), Sound("default")),
        Rule(".m.rule.room_one_to_one", [MemberCount("2"), EventMatch("type", "m.room.message")], Notify(), Sound("default")),
        Rule(".m.rule.message", [EventMatch("type", "m.room.message")], Notify()),
        Rule(".m.rule.encrypted", [EventMatch("type", "m.room.encrypted")], Notify()),
    ];

    private static JsonObject Rule(string id, JsonObject[] conditions, params JsonNode[] actions) =>
        Rule(id, enabled: true, conditions, actions);

    private static JsonObject Rule(string id, bool enabled, JsonObject[] conditions, params JsonNode[] actions) => new()
    {
        ["rule_id"] = id,
        ["default"] = true,
        ["enabled"] = enabled,
        ["conditions"] = new JsonArray(conditions),
        ["actions"] = new JsonArray(actions),
    };

    private static JsonObject EventMatch(string key, string pattern) =>
        new() { ["kind"] = "event_match", ["key"] = key, ["pattern"] = pattern };

    private static JsonObject MemberCount(string @is) => new() { ["kind"] = "room_member_count", ["is"] = @is };

    private static JsonObject SenderNotificationPermission(string key) =>
        new() { ["kind"] = "sender_notification_permission", ["key"] = key };

    private static JsonNode Notify() => JsonValue.Create("notify");

    private static JsonObject Sound(string sound) => new() { ["set_tweak"] = "sound", ["value"] = sound };

    private static JsonObject Highlight() => new() { ["set_tweak"] = "highlight" };
}

using System.Text.Json.Nodes;
using Homeserver.Matrix;

namespace Homeserver.Tests.Unit;

public class DefaultPushRulesTests
{
    private const string User = "@alice:example.org";

    private static JsonObject Global => DefaultPushRules.For(User)["global"]!.AsObject();

    private static JsonObject Rule(string kind, string id) =>
        Global[kind]!.AsArray().Single(r => r!["rule_id"]!.GetValue<string>() == id)!.AsObject();

    private static string Canon(JsonNode? n) => CanonicalJson.Encode(n);

    [Fact]
    public void HasAllKindsAndRulesInSpecOrder()
    {
        var g = Global;
        Assert.Equal(new[] { "content", "override", "room", "sender", "underride" }, g.Select(kv => kv.Key).Order(StringComparer.Ordinal));
        Assert.Empty(g["room"]!.AsArray());
        Assert.Empty(g["sender"]!.AsArray());
        Assert.Equal(
            new[]
            {
                ".m.rule.master", ".m.rule.suppress_notices", ".m.rule.invite_for_me", ".m.rule.member_event",
                ".m.rule.is_user_mention", ".m.rule.contains_display_name", ".m.rule.is_room_mention",
                ".m.rule.roomnotif", ".m.rule.tombstone", ".m.rule.reaction", ".m.rule.room.server_acl",
                ".m.rule.suppress_edits",
            },
            g["override"]!.AsArray().Select(r => r!["rule_id"]!.GetValue<string>()));
        Assert.Equal(new[] { ".m.rule.contains_user_name" }, g["content"]!.AsArray().Select(r => r!["rule_id"]!.GetValue<string>()));
        Assert.Equal(
            new[] { ".m.rule.call", ".m.rule.encrypted_room_one_to_one", ".m.rule.room_one_to_one", ".m.rule.message", ".m.rule.encrypted" },
            g["underride"]!.AsArray().Select(r => r!["rule_id"]!.GetValue<string>()));
    }

    [Fact]
    public void AllRulesAreDefaultAndOnlyMasterIsDisabled()
    {
        foreach (var kind in new[] { "override", "content", "underride" })
        foreach (var rule in Global[kind]!.AsArray())
        {
            Assert.True(rule!["default"]!.GetValue<bool>());
            var id = rule["rule_id"]!.GetValue<string>();
            Assert.Equal(id != ".m.rule.master", rule["enabled"]!.GetValue<bool>());
            Assert.NotNull(rule["actions"]);
            Assert.Equal(kind == "content", rule.AsObject().ContainsKey("pattern"));
            Assert.Equal(kind != "content", rule.AsObject().ContainsKey("conditions"));
        }
    }

    [Fact]
    public void UserSpecificRulesUseTheUserId()
    {
        Assert.Equal(
            """{"actions":["notify",{"set_tweak":"sound","value":"default"}],"conditions":[{"key":"type","kind":"event_match","pattern":"m.room.member"},{"key":"content.membership","kind":"event_match","pattern":"invite"},{"key":"state_key","kind":"event_match","pattern":"@alice:example.org"}],"default":true,"enabled":true,"rule_id":".m.rule.invite_for_me"}""",
            Canon(Rule("override", ".m.rule.invite_for_me")));
        Assert.Equal(
            """{"actions":["notify",{"set_tweak":"sound","value":"default"},{"set_tweak":"highlight"}],"conditions":[{"key":"content.m\\.mentions.user_ids","kind":"event_property_contains","value":"@alice:example.org"}],"default":true,"enabled":true,"rule_id":".m.rule.is_user_mention"}""",
            Canon(Rule("override", ".m.rule.is_user_mention")));
        Assert.Equal(
            """{"actions":["notify",{"set_tweak":"sound","value":"default"},{"set_tweak":"highlight"}],"default":true,"enabled":true,"pattern":"alice","rule_id":".m.rule.contains_user_name"}""",
            Canon(Rule("content", ".m.rule.contains_user_name")));
    }

    [Theory]
    [InlineData(".m.rule.master", """{"actions":[],"conditions":[],"default":true,"enabled":false,"rule_id":".m.rule.master"}""")]
    [InlineData(".m.rule.suppress_notices", """{"actions":[],"conditions":[{"key":"content.msgtype","kind":"event_match","pattern":"m.notice"}],"default":true,"enabled":true,"rule_id":".m.rule.suppress_notices"}""")]
    [InlineData(".m.rule.member_event", """{"actions":[],"conditions":[{"key":"type","kind":"event_match","pattern":"m.room.member"}],"default":true,"enabled":true,"rule_id":".m.rule.member_event"}""")]
    [InlineData(".m.rule.contains_display_name", """{"actions":["notify",{"set_tweak":"sound","value":"default"},{"set_tweak":"highlight"}],"conditions":[{"kind":"contains_display_name"}],"default":true,"enabled":true,"rule_id":".m.rule.contains_display_name"}""")]
    [InlineData(".m.rule.is_room_mention", """{"actions":["notify",{"set_tweak":"highlight"}],"conditions":[{"key":"content.m\\.mentions.room","kind":"event_property_is","value":true},{"key":"room","kind":"sender_notification_permission"}],"default":true,"enabled":true,"rule_id":".m.rule.is_room_mention"}""")]
    [InlineData(".m.rule.roomnotif", """{"actions":["notify",{"set_tweak":"highlight"}],"conditions":[{"key":"content.body","kind":"event_match","pattern":"@room"},{"key":"room","kind":"sender_notification_permission"}],"default":true,"enabled":true,"rule_id":".m.rule.roomnotif"}""")]
    [InlineData(".m.rule.tombstone", """{"actions":["notify",{"set_tweak":"highlight"}],"conditions":[{"key":"type","kind":"event_match","pattern":"m.room.tombstone"},{"key":"state_key","kind":"event_match","pattern":""}],"default":true,"enabled":true,"rule_id":".m.rule.tombstone"}""")]
    [InlineData(".m.rule.reaction", """{"actions":[],"conditions":[{"key":"type","kind":"event_match","pattern":"m.reaction"}],"default":true,"enabled":true,"rule_id":".m.rule.reaction"}""")]
    [InlineData(".m.rule.room.server_acl", """{"actions":[],"conditions":[{"key":"type","kind":"event_match","pattern":"m.room.server_acl"},{"key":"state_key","kind":"event_match","pattern":""}],"default":true,"enabled":true,"rule_id":".m.rule.room.server_acl"}""")]
    [InlineData(".m.rule.suppress_edits", """{"actions":[],"conditions":[{"key":"content.m\\.relates_to.rel_type","kind":"event_property_is","value":"m.replace"}],"default":true,"enabled":true,"rule_id":".m.rule.suppress_edits"}""")]
    public void OverrideRulesMatchTheSpec(string id, string expected) => Assert.Equal(expected, Canon(Rule("override", id)));

    [Theory]
    [InlineData(".m.rule.call", """{"actions":["notify",{"set_tweak":"sound","value":"ring"}],"conditions":[{"key":"type","kind":"event_match","pattern":"m.call.invite"}],"default":true,"enabled":true,"rule_id":".m.rule.call"}""")]
    [InlineData(".m.rule.encrypted_room_one_to_one", """{"actions":["notify",{"set_tweak":"sound","value":"default"}],"conditions":[{"is":"2","kind":"room_member_count"},{"key":"type","kind":"event_match","pattern":"m.room.encrypted"}],"default":true,"enabled":true,"rule_id":".m.rule.encrypted_room_one_to_one"}""")]
    [InlineData(".m.rule.room_one_to_one", """{"actions":["notify",{"set_tweak":"sound","value":"default"}],"conditions":[{"is":"2","kind":"room_member_count"},{"key":"type","kind":"event_match","pattern":"m.room.message"}],"default":true,"enabled":true,"rule_id":".m.rule.room_one_to_one"}""")]
    [InlineData(".m.rule.message", """{"actions":["notify"],"conditions":[{"key":"type","kind":"event_match","pattern":"m.room.message"}],"default":true,"enabled":true,"rule_id":".m.rule.message"}""")]
    [InlineData(".m.rule.encrypted", """{"actions":["notify"],"conditions":[{"key":"type","kind":"event_match","pattern":"m.room.encrypted"}],"default":true,"enabled":true,"rule_id":".m.rule.encrypted"}""")]
    public void UnderrideRulesMatchTheSpec(string id, string expected) => Assert.Equal(expected, Canon(Rule("underride", id)));

    [Fact]
    public void EachCallReturnsAFreshTree()
    {
        var a = DefaultPushRules.For(User);
        a["global"]!["override"]!.AsArray().Clear();
        Assert.Equal(12, DefaultPushRules.For(User)["global"]!["override"]!.AsArray().Count);
        Assert.Equal("bob", Rule2("@bob:example.org"));

        static string Rule2(string user) =>
            DefaultPushRules.For(user)["global"]!["content"]![0]!["pattern"]!.GetValue<string>();
    }
}

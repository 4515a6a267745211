using System.Text.Json.Nodes;
using Homeserver.Matrix;
using Homeserver.PushRules;
using Homeserver.Rooms;

namespace Homeserver.Tests.Unit;

public sealed class PushRuleEvaluatorTests
{
    private const string Bob = "@bob:example.org", Alice = "@alice:example.org";

    private static readonly PushRoomContext Group = new(5, new PowerLevels(
        new JsonObject { ["users"] = new JsonObject { [Alice] = 100 }, ["notifications"] = new JsonObject { ["room"] = 50 } }, Alice));

    private static int _next;

    private static StoredEvent Event(JsonObject content, string type = "m.room.message", string sender = Alice, string? stateKey = null)
    {
        var json = new JsonObject { ["type"] = type, ["sender"] = sender, ["room_id"] = "!r:example.org", ["content"] = content.DeepClone() };
        if (stateKey is not null) json["state_key"] = stateKey;
        var id = $"$e{Interlocked.Increment(ref _next)}";
        json["event_id"] = id;
        return new StoredEvent(id, "!r:example.org", type, stateKey, sender, 0, 1, 0, 1, json.ToJsonString(), null, null, false);
    }

    private static JsonObject Text(string body) => new() { ["msgtype"] = "m.text", ["body"] = body };

    private static CompiledPushRules Rules(Action<PushRuleDocument>? change = null)
    {
        var doc = PushRuleDocument.Empty();
        change?.Invoke(doc);
        return CompiledPushRules.Compile(Bob, doc.Merge(Bob));
    }

    [Fact]
    public void Others_memberships_never_notify_only_while_no_notifying_rule_comes_before_the_member_rule()
    {
        Assert.True(Rules().OthersMembershipsNeverNotify);
        // A user's override rule comes before the defaults: one that notifies could match a membership.
        Assert.False(Rules(doc => doc.Put("override", "joins", new JsonObject
        {
            ["conditions"] = new JsonArray(new JsonObject { ["kind"] = "event_match", ["key"] = "type", ["pattern"] = "m.room.member" }),
            ["actions"] = new JsonArray("notify"),
        }, null, null)).OthersMembershipsNeverNotify);
        Assert.False(Rules(doc => doc.SetActions("override", ".m.rule.member_event", new JsonArray("notify"))).OthersMembershipsNeverNotify);
        Assert.False(Rules(doc => doc.SetEnabled("override", ".m.rule.member_event", false)).OthersMembershipsNeverNotify);
    }

    [Fact]
    public void Default_rules_notify_messages_and_highlight_the_users_name_as_a_word()
    {
        var rules = Rules();
        Assert.Equal(new[] { true, false }, Flags(rules.Evaluate(Event(Text("hello")), Group, "Bobby")));
        Assert.Equal(new[] { true, true }, Flags(rules.Evaluate(Event(Text("hey bob, look")), Group, null)));
        Assert.Equal(new[] { true, false }, Flags(rules.Evaluate(Event(Text("bobcat")), Group, null)));
        Assert.Equal(new[] { true, true }, Flags(rules.Evaluate(Event(Text("thanks BOBBY!")), Group, "Bobby")));
        // Notices, member events and the user's own messages do not notify.
        Assert.False(rules.Evaluate(Event(new JsonObject { ["msgtype"] = "m.notice", ["body"] = "bob" }), Group, null)!.Notify);
        Assert.False(rules.Evaluate(Event(new JsonObject { ["membership"] = "join" }, "m.room.member", stateKey: Alice), Group, null)!.Notify);
        Assert.Null(rules.Evaluate(Event(Text("mine"), sender: Bob), Group, null));
        // An unknown event type matches no rule.
        Assert.Null(rules.Evaluate(Event(new JsonObject(), "org.example.custom"), Group, null));
    }

    [Fact]
    public void Mentions_and_room_pings_follow_properties_and_the_senders_power()
    {
        var rules = Rules();
        var mention = new JsonObject { ["body"] = "x", ["msgtype"] = "m.text", ["m.mentions"] = new JsonObject { ["user_ids"] = new JsonArray(Bob) } };
        Assert.True(rules.Evaluate(Event(mention), Group, null)!.Highlight);
        var room = new JsonObject { ["body"] = "x", ["msgtype"] = "m.text", ["m.mentions"] = new JsonObject { ["room"] = true } };
        Assert.True(rules.Evaluate(Event(room), Group, null)!.Highlight);
        // A member without the room notification level pings nobody.
        Assert.False(rules.Evaluate(Event(room, sender: "@carol:example.org"), Group, null)!.Highlight);
        Assert.False(rules.Evaluate(Event(Text("@room look"), sender: "@carol:example.org"), Group, null)!.Highlight);
        Assert.True(rules.Evaluate(Event(Text("@room look")), Group, null)!.Highlight);
    }

    [Fact]
    public void One_to_one_rooms_are_counted_by_joined_members()
    {
        var rules = Rules();
        var direct = Group with { JoinedMembers = 2 };
        Assert.Equal(".m.rule.room_one_to_one", rules.Evaluate(Event(Text("hi")), direct, null)!.RuleId);
        Assert.Equal(".m.rule.message", rules.Evaluate(Event(Text("hi")), Group, null)!.RuleId);
    }

    [Fact]
    public void User_rules_come_before_defaults_and_disabled_rules_never_match()
    {
        var everything = Rules(doc => doc.Put("content", "anything", new JsonObject
        {
            ["pattern"] = "*", ["actions"] = new JsonArray("notify", new JsonObject { ["set_tweak"] = "highlight", ["value"] = true }),
        }, null, null));
        Assert.True(everything.Evaluate(Event(Text("anything at all")), Group, null)!.Highlight);

        var muted = Rules(doc => doc.Put("room", "!r:example.org", new JsonObject { ["actions"] = new JsonArray("dont_notify") }, null, null));
        Assert.False(muted.Evaluate(Event(Text("hello")), Group, null)!.Notify);
        Assert.True(muted.Evaluate(Event(Text("hey bob")), Group, null)!.Highlight); // content rules outrank room rules

        var off = Rules(doc => doc.SetEnabled("underride", ".m.rule.message", false));
        Assert.Null(off.Evaluate(Event(Text("hello")), Group, null));

        var noHighlight = Rules(doc => doc.Put("content", "quiet", new JsonObject
        {
            ["pattern"] = "quiet", ["actions"] = new JsonArray("notify", new JsonObject { ["set_tweak"] = "highlight", ["value"] = false }),
        }, null, null));
        Assert.Equal(new[] { true, false }, Flags(noHighlight.Evaluate(Event(Text("be quiet")), Group, null)));
    }

    [Fact]
    public void Conditions_read_escaped_keys_globs_and_never_an_unknown_kind()
    {
        var rules = Rules(doc =>
        {
            doc.Put("override", "dotted", new JsonObject
            {
                ["conditions"] = new JsonArray(new JsonObject { ["kind"] = "event_match", ["key"] = "content.org\\.example\\.tag", ["pattern"] = "ye?" }),
                ["actions"] = new JsonArray("notify", new JsonObject { ["set_tweak"] = "highlight" }),
            }, null, null);
            doc.Put("override", "unknown", new JsonObject
            {
                ["conditions"] = new JsonArray(new JsonObject { ["kind"] = "org.example.future" }),
                ["actions"] = new JsonArray("notify", new JsonObject { ["set_tweak"] = "highlight" }),
            }, null, null);
        });
        var tagged = Text("plain");
        tagged["org.example.tag"] = "YES";
        Assert.Equal("dotted", rules.Evaluate(Event(tagged), Group, null)!.RuleId);
        tagged["org.example.tag"] = "yess"; // a glob over a non-body key matches the whole value
        Assert.Equal(".m.rule.message", rules.Evaluate(Event(tagged), Group, null)!.RuleId);
        Assert.Equal(".m.rule.message", rules.Evaluate(Event(Text("plain")), Group, null)!.RuleId);
    }

    [Fact]
    public void A_hostile_glob_stays_linear()
    {
        var rules = Rules(doc => doc.Put("content", "hostile", new JsonObject
        {
            ["pattern"] = string.Concat(Enumerable.Repeat("*a", 30)) + "b", ["actions"] = new JsonArray("notify"),
        }, null, null));
        var started = System.Diagnostics.Stopwatch.StartNew();
        Assert.Equal(".m.rule.message", rules.Evaluate(Event(Text(new string('a', 20_000))), Group, null)!.RuleId);
        Assert.True(started.Elapsed < TimeSpan.FromSeconds(5), $"took {started.Elapsed}");
    }

    private static bool[] Flags(PushActions? actions) => [actions!.Notify, actions.Highlight];
}

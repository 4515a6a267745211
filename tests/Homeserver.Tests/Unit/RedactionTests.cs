using System.Text.Json.Nodes;
using Homeserver.Matrix;

namespace Homeserver.Tests.Unit;

public class RedactionTests
{
    private static JsonObject Event(string type, JsonObject content, string? stateKey = "") => new()
    {
        ["event_id"] = "$ev",
        ["type"] = type,
        ["room_id"] = "!r:example.org",
        ["sender"] = "@u:example.org",
        ["state_key"] = stateKey,
        ["content"] = content.DeepClone(), // tests reuse one content for several versions
        ["hashes"] = new JsonObject { ["sha256"] = "h" },
        ["signatures"] = new JsonObject { ["example.org"] = new JsonObject { ["ed25519:1"] = "s" } },
        ["depth"] = 3,
        ["prev_events"] = new JsonArray("$p"),
        ["prev_state"] = new JsonArray(),
        ["auth_events"] = new JsonArray("$a"),
        ["origin"] = "example.org",
        ["origin_server_ts"] = 1000,
        ["membership"] = "join",
        ["unsigned"] = new JsonObject { ["age"] = 1 },
        ["extra_top_level"] = "gone",
    };

    private static string[] Keys(JsonObject o) => o.Select(kv => kv.Key).Order(StringComparer.Ordinal).ToArray();

    [Fact]
    public void V10KeepsTheProtectedTopLevelKeys()
    {
        var r = Redaction.Redact(Event("m.room.message", new JsonObject { ["body"] = "x" }, null), "10");
        Assert.Equal(
            new[] { "auth_events", "content", "depth", "event_id", "hashes", "membership", "origin", "origin_server_ts",
                    "prev_events", "prev_state", "room_id", "sender", "signatures", "state_key", "type" },
            Keys(r));
        Assert.Empty(r["content"]!.AsObject());
        Assert.False(r.ContainsKey("unsigned"));
    }

    [Fact]
    public void V11DropsOriginMembershipAndPrevState()
    {
        var r = Redaction.Redact(Event("m.room.message", new JsonObject { ["body"] = "x" }, null), "11");
        Assert.Equal(
            new[] { "auth_events", "content", "depth", "event_id", "hashes", "origin_server_ts", "prev_events",
                    "room_id", "sender", "signatures", "state_key", "type" },
            Keys(r));
    }

    [Fact]
    public void NeverMutatesTheInput()
    {
        var ev = Event("m.room.member", new JsonObject { ["membership"] = "join", ["displayname"] = "U" }, "@u:example.org");
        var before = ev.ToJsonString();
        var r = Redaction.Redact(ev, "10");
        Assert.Equal(before, ev.ToJsonString());
        // The result shares no nodes with the input.
        r["content"]!["membership"] = "leave";
        r["prev_events"]!.AsArray().Add("$q");
        Assert.Equal(before, ev.ToJsonString());
    }

    [Theory]
    [InlineData("10", new[] { "join_authorised_via_users_server", "membership" })]
    [InlineData("9", new[] { "join_authorised_via_users_server", "membership" })]
    [InlineData("8", new[] { "membership" })]
    [InlineData("1", new[] { "membership" })]
    public void MemberContent(string version, string[] expected)
    {
        var content = new JsonObject
        {
            ["membership"] = "join", ["displayname"] = "U", ["avatar_url"] = "mxc://x/y",
            ["join_authorised_via_users_server"] = "@a:example.org",
            ["third_party_invite"] = new JsonObject { ["signed"] = new JsonObject { ["token"] = "t" }, ["display_name"] = "d" },
        };
        var r = Redaction.Redact(Event("m.room.member", content, "@u:example.org"), version);
        Assert.Equal(expected, Keys(r["content"]!.AsObject()));
    }

    [Fact]
    public void V11MemberKeepsOnlySignedOfThirdPartyInvite()
    {
        var content = new JsonObject
        {
            ["membership"] = "invite",
            ["third_party_invite"] = new JsonObject { ["signed"] = new JsonObject { ["token"] = "t", ["mxid"] = "@u:example.org" }, ["display_name"] = "d" },
        };
        var r = Redaction.Redact(Event("m.room.member", content, "@u:example.org"), "11");
        Assert.Equal("{\"membership\":\"invite\",\"third_party_invite\":{\"signed\":{\"mxid\":\"@u:example.org\",\"token\":\"t\"}}}",
            CanonicalJson.Encode(r["content"]));
    }

    [Fact]
    public void CreateKeepsCreatorBeforeV11AndEverythingFromV11()
    {
        var content = new JsonObject { ["creator"] = "@u:example.org", ["room_version"] = "10", ["m.federate"] = false };
        Assert.Equal("{\"creator\":\"@u:example.org\"}", CanonicalJson.Encode(Redaction.Redact(Event("m.room.create", content), "10")["content"]));
        Assert.Equal(CanonicalJson.Encode(content), CanonicalJson.Encode(Redaction.Redact(Event("m.room.create", content), "11")["content"]));
    }

    [Fact]
    public void JoinRulesKeepAllowFromV8()
    {
        var content = new JsonObject { ["join_rule"] = "restricted", ["allow"] = new JsonArray(), ["other"] = 1 };
        Assert.Equal(new[] { "allow", "join_rule" }, Keys(Redaction.Redact(Event("m.room.join_rules", content), "10")["content"]!.AsObject()));
        Assert.Equal(new[] { "join_rule" }, Keys(Redaction.Redact(Event("m.room.join_rules", content), "7")["content"]!.AsObject()));
    }

    [Fact]
    public void PowerLevelsKeepInviteOnlyFromV11()
    {
        var content = new JsonObject
        {
            ["ban"] = 50, ["events"] = new JsonObject(), ["events_default"] = 0, ["invite"] = 0, ["kick"] = 50,
            ["redact"] = 50, ["state_default"] = 50, ["users"] = new JsonObject(), ["users_default"] = 0,
            ["notifications"] = new JsonObject { ["room"] = 50 },
        };
        Assert.Equal(new[] { "ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default" },
            Keys(Redaction.Redact(Event("m.room.power_levels", content), "10")["content"]!.AsObject()));
        Assert.Equal(new[] { "ban", "events", "events_default", "invite", "kick", "redact", "state_default", "users", "users_default" },
            Keys(Redaction.Redact(Event("m.room.power_levels", content), "11")["content"]!.AsObject()));
    }

    [Fact]
    public void HistoryVisibilityKeepsItsKey()
    {
        var content = new JsonObject { ["history_visibility"] = "shared", ["x"] = 1 };
        Assert.Equal(new[] { "history_visibility" }, Keys(Redaction.Redact(Event("m.room.history_visibility", content), "10")["content"]!.AsObject()));
    }

    [Fact]
    public void RedactionKeepsRedactsInContentOnlyFromV11()
    {
        var content = new JsonObject { ["redacts"] = "$target", ["reason"] = "spam" };
        Assert.Empty(Redaction.Redact(Event("m.room.redaction", content, null), "10")["content"]!.AsObject());
        Assert.Equal(new[] { "redacts" }, Keys(Redaction.Redact(Event("m.room.redaction", content, null), "11")["content"]!.AsObject()));
    }

    [Fact]
    public void AliasesKeptOnlyUpToV5()
    {
        var content = new JsonObject { ["aliases"] = new JsonArray("#a:example.org") };
        Assert.Equal(new[] { "aliases" }, Keys(Redaction.Redact(Event("m.room.aliases", content, "example.org"), "5")["content"]!.AsObject()));
        Assert.Empty(Redaction.Redact(Event("m.room.aliases", content, "example.org"), "6")["content"]!.AsObject());
    }

    [Fact]
    public void OtherStateEventsLoseAllContent()
    {
        var r = Redaction.Redact(Event("m.room.name", new JsonObject { ["name"] = "Secret" }), "10");
        Assert.Empty(r["content"]!.AsObject());
        Assert.Equal("", r["state_key"]!.GetValue<string>());
    }

    [Fact]
    public void MissingContentBecomesEmptyObject()
    {
        var ev = Event("m.room.message", new JsonObject(), null);
        ev.Remove("content");
        Assert.Empty(Redaction.Redact(ev, "10")["content"]!.AsObject());
    }

    [Fact]
    public void RedactingTwiceIsStable()
    {
        var ev = Event("m.room.power_levels", new JsonObject { ["ban"] = 50, ["x"] = 1 });
        var once = Redaction.Redact(ev, "10");
        Assert.Equal(CanonicalJson.Encode(once), CanonicalJson.Encode(Redaction.Redact(once, "10")));
    }
}

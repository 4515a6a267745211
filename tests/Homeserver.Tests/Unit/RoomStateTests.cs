using System.Text.Json.Nodes;
using Homeserver.Matrix;

namespace Homeserver.Tests.Unit;

public class RoomStateTests
{
    private static JsonObject State(string type, string stateKey, JsonObject content, string sender = "@a:x") =>
        new() { ["type"] = type, ["state_key"] = stateKey, ["sender"] = sender, ["room_id"] = "!r:x", ["content"] = content };

    private static JsonObject Member(string user, string membership) =>
        State("m.room.member", user, new JsonObject { ["membership"] = membership }, user);

    [Fact]
    public void GetSetAndReplace()
    {
        var s = new RoomState();
        Assert.Null(s.Get("m.room.name", ""));
        var first = State("m.room.name", "", new JsonObject { ["name"] = "one" });
        s.Set(first);
        Assert.Same(first, s.Get("m.room.name", ""));
        var second = State("m.room.name", "", new JsonObject { ["name"] = "two" });
        s.Set(second);
        Assert.Same(second, s.Get("m.room.name", ""));
        Assert.Equal(1, s.Count);
        Assert.Null(s.Get("m.room.name", "other"));
        Assert.True(s.Remove("m.room.name", ""));
        Assert.Equal(0, s.Count);
    }

    [Fact]
    public void SetRejectsNonStateEvents()
    {
        var s = new RoomState();
        Assert.Throws<ArgumentException>(() => s.Set(new JsonObject { ["type"] = "m.room.message", ["content"] = new JsonObject() }));
        Assert.Throws<ArgumentException>(() => s.Set(new JsonObject { ["state_key"] = "" }));
    }

    [Fact]
    public void MembershipAndMembers()
    {
        var s = new RoomState([Member("@a:x", "join"), Member("@b:x", "invite"), Member("@c:x", "ban"), Member("@d:x", "join")]);
        Assert.Equal("join", s.Membership("@a:x"));
        Assert.Equal("invite", s.Membership("@b:x"));
        Assert.Equal("ban", s.Membership("@c:x"));
        Assert.Null(s.Membership("@nobody:x"));
        Assert.Equal(["@a:x", "@d:x"], s.Members().Order(StringComparer.Ordinal));
        Assert.Equal(["@b:x"], s.Members("invite"));
        s.Set(Member("@a:x", "leave"));
        Assert.Equal("leave", s.Membership("@a:x"));
        Assert.Equal(["@d:x"], s.Members());
    }

    [Fact]
    public void CreateEventCreatorAndVersion()
    {
        var s = new RoomState();
        Assert.Null(s.CreateEvent);
        Assert.Null(s.Creator);
        s.Set(State("m.room.create", "", new JsonObject { ["creator"] = "@c:x", ["room_version"] = "10" }, "@c:x"));
        Assert.Equal("@c:x", s.Creator);
        Assert.Equal("10", s.RoomVersion);

        // v11: the sender is the creator, content.creator is ignored.
        var v11 = new RoomState([State("m.room.create", "", new JsonObject { ["room_version"] = "11", ["creator"] = "@fake:x" }, "@real:x")]);
        Assert.Equal("@real:x", v11.Creator);

        // No room_version means version 1.
        Assert.Equal("1", new RoomState([State("m.room.create", "", new JsonObject { ["creator"] = "@c:x" })]).RoomVersion);
    }

    [Fact]
    public void JoinRuleDefaultsToInvite()
    {
        var s = new RoomState();
        Assert.Equal("invite", s.JoinRule);
        s.Set(State("m.room.join_rules", "", new JsonObject { ["join_rule"] = "public" }));
        Assert.Equal("public", s.JoinRule);
    }

    [Fact]
    public void PowerLevelsFollowStateChanges()
    {
        var s = new RoomState([State("m.room.create", "", new JsonObject { ["creator"] = "@c:x", ["room_version"] = "10" }, "@c:x")]);
        Assert.Equal(100, s.PowerLevels.GetUserLevel("@c:x"));
        Assert.False(s.PowerLevels.Exists);

        s.Set(State("m.room.power_levels", "", new JsonObject { ["users"] = new JsonObject { ["@u:x"] = 42 } }));
        Assert.True(s.PowerLevels.Exists);
        Assert.Equal(42, s.PowerLevels.GetUserLevel("@u:x"));
        Assert.Equal(0, s.PowerLevels.GetUserLevel("@c:x"));

        s.Set(State("m.room.power_levels", "", new JsonObject { ["users"] = new JsonObject { ["@u:x"] = 7 } }));
        Assert.Equal(7, s.PowerLevels.GetUserLevel("@u:x"));
    }

    [Fact]
    public void CloneIsIndependent()
    {
        var s = new RoomState([Member("@a:x", "join")]);
        var c = s.Clone();
        c.Set(Member("@a:x", "leave"));
        c.Set(Member("@b:x", "join"));
        Assert.Equal("join", s.Membership("@a:x"));
        Assert.Null(s.Membership("@b:x"));
        Assert.Equal(1, s.Count);
        Assert.Equal(2, c.Count);
        Assert.Equal(2, c.Events.Count());
        Assert.Contains(c.Entries, e => e.Key == ("m.room.member", "@b:x"));
    }

    [Fact]
    public void State_loaded_from_stored_json_answers_as_the_parsed_events_do()
    {
        var create = State("m.room.create", "", new JsonObject { ["room_version"] = "10", ["creator"] = "@a:x" }, "@a:x");
        var levels = State("m.room.power_levels", "", new JsonObject { ["users"] = new JsonObject { ["@a:x"] = 100 }, ["ban"] = 60 });
        var rules = State("m.room.join_rules", "", new JsonObject { ["join_rule"] = "public" });
        var events = new List<JsonObject> { create, levels, rules };
        var memberships = new[] { "join", "invite", "ban", "leave", "knock", "join" };
        for (var i = 0; i < memberships.Length; i++)
        {
            var member = Member($"@u{i}:x", memberships[i]);
            member["event_id"] = $"$m{i}";
            // The content comes back whole, nested fields included; what the writer never reads (unsigned) is not held.
            member["content"]!["displayname"] = $"User {i}";
            member["content"]!["m.extra"] = new JsonObject { ["nested"] = new JsonArray(1, "two") };
            member["unsigned"] = new JsonObject { ["prev_content"] = new JsonObject { ["membership"] = "invite" } };
            events.Add(member);
        }
        var parsed = new RoomState(events);
        var loaded = RoomState.FromJson(events.Select(e => e.ToJsonString()));

        Assert.Equal(parsed.Count, loaded.Count);
        Assert.Equal(parsed.Keys.OrderBy(k => k), loaded.Keys.OrderBy(k => k));
        foreach (var membership in memberships.Distinct())
            Assert.Equal(parsed.Members(membership).Order(), loaded.Members(membership).Order());
        for (var i = 0; i < memberships.Length; i++)
        {
            var user = $"@u{i}:x";
            Assert.Equal(memberships[i], loaded.Membership(user));
            Assert.Equal($"$m{i}", loaded.GetEventId("m.room.member", user));
            Assert.True(JsonNode.DeepEquals(parsed.Get("m.room.member", user), loaded.Get("m.room.member", user)));
            var member = loaded.Get("m.room.member", user)!;
            Assert.True(JsonNode.DeepEquals(events[3 + i]["content"], member["content"]));
            Assert.Equal(("m.room.member", user, user, $"$m{i}"),
                (member["type"]!.GetValue<string>(), member["state_key"]!.GetValue<string>(), member["sender"]!.GetValue<string>(), member["event_id"]!.GetValue<string>()));
            Assert.Null(member["unsigned"]);
        }
        Assert.Null(loaded.Membership("@nobody:x"));
        Assert.Null(loaded.GetEventId("m.room.member", "@nobody:x"));
        Assert.Equal("public", loaded.JoinRule);
        Assert.Equal("@a:x", loaded.Creator);
        Assert.Equal(100, loaded.PowerLevels.GetUserLevel("@a:x"));
        Assert.Equal(60, loaded.PowerLevels.Ban);

        // A member event read from the compact form is a copy: changing it does not change the state.
        loaded.Get("m.room.member", "@u0:x")!["content"]!["membership"] = "leave";
        Assert.Equal("join", loaded.Membership("@u0:x"));
        // Set on a loaded state: the new event replaces the held bytes, the clone before it keeps them.
        var before = loaded.Clone();
        var left = Member("@u0:x", "leave");
        left["event_id"] = "$left";
        loaded.Set(left, left.ToJsonString());
        Assert.Equal("leave", loaded.Membership("@u0:x"));
        Assert.Equal("$left", loaded.GetEventId("m.room.member", "@u0:x"));
        Assert.Equal("join", before.Membership("@u0:x"));
        Assert.Equal("$m0", before.GetEventId("m.room.member", "@u0:x"));
    }

    [Theory]
    [InlineData("1")]
    [InlineData("2")]
    [InlineData(null)]
    public void Rooms_that_reference_events_by_hash_keep_member_events_whole(string? version)
    {
        var content = new JsonObject { ["creator"] = "@a:x" };
        if (version is not null) content["room_version"] = version;
        var member = Member("@u:x", "join");
        member["event_id"] = "$m";
        member["hashes"] = new JsonObject { ["sha256"] = "abc" };
        member["prev_events"] = new JsonArray(new JsonArray("$p", new JsonObject { ["sha256"] = "def" }));
        // The member event before the create event: the create event decides however they come.
        var events = new List<JsonObject> { member, State("m.room.create", "", content) };

        foreach (var state in new[] { new RoomState(events), RoomState.FromJson(events.Select(e => e.ToJsonString())) })
        {
            Assert.True(JsonNode.DeepEquals(member, state.Get("m.room.member", "@u:x")));
            Assert.Equal("$m", state.GetEventId("m.room.member", "@u:x"));
            Assert.Equal("join", state.Membership("@u:x"));
            var later = Member("@v:x", "invite");
            later["hashes"] = new JsonObject { ["sha256"] = "ghi" };
            state.Set(later);
            Assert.True(JsonNode.DeepEquals(later, state.Get("m.room.member", "@v:x")));
        }
        // From version 3 on, only the summary is held.
        var v3 = new RoomState([State("m.room.create", "", new JsonObject { ["room_version"] = "3" }), member]);
        Assert.Null(v3.Get("m.room.member", "@u:x")!["hashes"]);
    }
}

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
}

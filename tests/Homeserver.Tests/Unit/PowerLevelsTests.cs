using System.Text.Json.Nodes;
using Homeserver.Errors;
using Homeserver.Matrix;

namespace Homeserver.Tests.Unit;

public class PowerLevelsTests
{
    private static JsonObject Obj(string json) => JsonNode.Parse(json)!.AsObject();

    [Fact]
    public void NoEventGivesCreator100AndSpecDefaults()
    {
        var pl = new PowerLevels(null, "@creator:example.org");
        Assert.False(pl.Exists);
        Assert.Equal(100, pl.GetUserLevel("@creator:example.org"));
        Assert.Equal(0, pl.GetUserLevel("@other:example.org"));
        Assert.Equal(50, pl.Ban);
        Assert.Equal(50, pl.Kick);
        Assert.Equal(50, pl.Redact);
        Assert.Equal(0, pl.Invite);
        Assert.Equal(0, pl.UsersDefault);
        Assert.Equal(0, pl.EventsDefault);
        Assert.Equal(50, pl.StateDefault);
        Assert.Equal(0, pl.GetEventLevel("m.room.message", isState: false));
        Assert.Equal(50, pl.GetEventLevel("m.room.topic", isState: true));
        Assert.Equal(50, pl.GetNotificationLevel("room"));
    }

    [Fact]
    public void EmptyEventGivesDefaultsAndNoCreatorBonus()
    {
        var pl = new PowerLevels(new JsonObject(), "@creator:example.org");
        Assert.True(pl.Exists);
        Assert.Equal(0, pl.GetUserLevel("@creator:example.org"));
        Assert.Equal(50, pl.StateDefault);
        Assert.Equal(50, pl.GetNotificationLevel("room"));
    }

    [Fact]
    public void ReadsAllFields()
    {
        var pl = new PowerLevels(Obj("""
            {"ban":60,"kick":40,"redact":30,"invite":20,"state_default":70,"events_default":10,"users_default":5,
             "users":{"@a:x":100,"@b:x":-3},"events":{"m.room.name":80,"m.reaction":1},"notifications":{"room":90}}
            """), null);
        Assert.Equal(60, pl.Ban);
        Assert.Equal(40, pl.Kick);
        Assert.Equal(30, pl.Redact);
        Assert.Equal(20, pl.Invite);
        Assert.Equal(70, pl.StateDefault);
        Assert.Equal(10, pl.EventsDefault);
        Assert.Equal(5, pl.UsersDefault);
        Assert.Equal(100, pl.GetUserLevel("@a:x"));
        Assert.Equal(-3, pl.GetUserLevel("@b:x"));
        Assert.Equal(5, pl.GetUserLevel("@c:x"));
        Assert.Equal(80, pl.GetEventLevel("m.room.name", isState: true));
        Assert.Equal(1, pl.GetEventLevel("m.reaction", isState: false));
        Assert.Equal(70, pl.GetEventLevel("m.room.topic", isState: true));
        Assert.Equal(10, pl.GetEventLevel("m.room.message", isState: false));
        // The events map applies whether or not the event is state.
        Assert.Equal(80, pl.GetEventLevel("m.room.name", isState: false));
        Assert.Equal(90, pl.GetNotificationLevel("room"));
        Assert.Equal(50, pl.GetNotificationLevel("other"));
        Assert.Equal(60, pl.GetNamedLevel("ban"));
        Assert.Equal(2, pl.Users.Count);
    }

    [Fact]
    public void V10RejectsStringLevels()
    {
        Assert.Equal(ErrorCodes.BadJson, Assert.Throws<MatrixException>(() => new PowerLevels(Obj("{\"ban\":\"50\"}"), null, "10")).ErrCode);
        Assert.Throws<MatrixException>(() => new PowerLevels(Obj("{\"users\":{\"@a:x\":\"100\"}}"), null, "10"));
        Assert.Throws<MatrixException>(() => new PowerLevels(Obj("{\"events\":{\"m.room.name\":50.5}}"), null, "10"));
        Assert.Throws<MatrixException>(() => new PowerLevels(Obj("{\"users\":[]}"), null, "10"));
    }

    [Fact]
    public void OlderVersionsAcceptStringAndFloatLevels()
    {
        var pl = new PowerLevels(Obj("{\"ban\":\" 60 \",\"users\":{\"@a:x\":\"100\",\"@b:x\":\"-5\"},\"events\":{\"m.room.name\":50.7}}"), null, "9");
        Assert.Equal(60, pl.Ban);
        Assert.Equal(100, pl.GetUserLevel("@a:x"));
        Assert.Equal(-5, pl.GetUserLevel("@b:x"));
        Assert.Equal(50, pl.GetEventLevel("m.room.name", true));
        Assert.Throws<MatrixException>(() => new PowerLevels(Obj("{\"ban\":\"fifty\"}"), null, "9"));
    }

    [Fact]
    public void TryReadLevelRules()
    {
        Assert.True(PowerLevels.TryReadLevel(JsonValue.Create(5), true, out var l) && l == 5);
        Assert.False(PowerLevels.TryReadLevel(JsonValue.Create("5"), true, out _));
        Assert.True(PowerLevels.TryReadLevel(JsonValue.Create("5"), false, out l) && l == 5);
        Assert.False(PowerLevels.TryReadLevel(JsonValue.Create(true), false, out _));
        Assert.False(PowerLevels.TryReadLevel(null, false, out _));
        Assert.False(PowerLevels.TryReadLevel(JsonValue.Create(9007199254740992L), true, out _));
        Assert.False(PowerLevels.TryReadLevel(JsonNode.Parse("1.5"), true, out _));
    }
}

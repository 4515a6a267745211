using Homeserver.Matrix;

namespace Homeserver.Tests.Unit;

public class IdentifiersTests
{
    [Theory]
    [InlineData("alice", true)]
    [InlineData("a.b_c=d-e/f+g09", true)]
    [InlineData("", false)]
    [InlineData("Alice", false)]
    [InlineData("al ice", false)]
    [InlineData("al:ice", false)]
    [InlineData("al*ice", false)]
    [InlineData("élise", false)]
    [InlineData("#alice", false)]
    public void Localparts(string localpart, bool valid) => Assert.Equal(valid, Identifiers.IsValidLocalpart(localpart));

    [Theory]
    [InlineData("@alice:example.org", true)]
    [InlineData("@alice:example.org:8448", true)]
    [InlineData("@alice:1.2.3.4", true)]
    [InlineData("@alice:[1234:5678::abcd]:5678", true)]
    [InlineData("@Alice:example.org", true)]   // historical localparts are still accepted
    [InlineData("@al ice:example.org", true)]
    [InlineData("alice:example.org", false)]
    [InlineData("@alice", false)]
    [InlineData("@:example.org", false)]
    [InlineData("@alice:", false)]
    [InlineData("@alice:exa mple.org", false)]
    [InlineData("@alice:example.org:port", false)]
    [InlineData("@alice:example.org:123456", false)]
    [InlineData("@alice:[zz::1]", false)]
    [InlineData("@al\0ice:example.org", false)]
    public void UserIds(string userId, bool valid) => Assert.Equal(valid, Identifiers.IsValidUserId(userId));

    [Fact]
    public void NewUserIdsNeedStrictLocalparts()
    {
        Assert.True(Identifiers.IsValidNewUserId("@alice:example.org"));
        Assert.False(Identifiers.IsValidNewUserId("@Alice:example.org"));
    }

    [Fact]
    public void UserIdLengthLimitIs255Bytes()
    {
        var server = ":example.org";
        var ok = "@" + new string('a', 255 - 1 - server.Length) + server;
        Assert.Equal(255, ok.Length);
        Assert.True(Identifiers.IsValidUserId(ok));
        Assert.False(Identifiers.IsValidUserId("@a" + ok[1..]));
        // Bytes, not characters: 'é' is two bytes.
        var multi = "@" + new string('é', 122) + server;
        Assert.True(multi.Length < 255);
        Assert.False(Identifiers.IsValidUserId(multi));
    }

    [Fact]
    public void ParsesUserIdAtTheFirstColon()
    {
        Assert.True(Identifiers.TryParseUserId("@bob:example.org:8448", out var local, out var server));
        Assert.Equal("bob", local);
        Assert.Equal("example.org:8448", server);
        Assert.False(Identifiers.TryParseUserId("#bob:example.org", out _, out _));
        Assert.False(Identifiers.TryParseUserId(null, out _, out _));
    }

    [Theory]
    [InlineData("!abcDEF123:example.org", true)]
    [InlineData("!a:example.org", true)]
    [InlineData("!:example.org", false)]
    [InlineData("!abc", false)]
    [InlineData("#abc:example.org", false)]
    public void RoomIds(string id, bool valid) => Assert.Equal(valid, Identifiers.IsValidRoomId(id));

    [Theory]
    [InlineData("#room:example.org", true)]
    [InlineData("#room with spaces:example.org", true)]
    [InlineData("#:example.org", false)]
    [InlineData("#room", false)]
    [InlineData("!room:example.org", false)]
    public void RoomAliases(string alias, bool valid) => Assert.Equal(valid, Identifiers.IsValidRoomAlias(alias));

    [Theory]
    [InlineData("$abc", true)]
    [InlineData("$abc:example.org", true)]
    [InlineData("$Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg", true)]
    [InlineData("$", false)]
    [InlineData("abc", false)]
    [InlineData("", false)]
    public void EventIds(string id, bool valid) => Assert.Equal(valid, Identifiers.IsValidEventId(id));

    [Fact]
    public void ServerNameOf()
    {
        Assert.Equal("example.org", Identifiers.ServerNameOf("@a:example.org"));
        Assert.Equal("example.org:80", Identifiers.ServerNameOf("!r:example.org:80"));
        Assert.Null(Identifiers.ServerNameOf("@a"));
        Assert.Null(Identifiers.ServerNameOf(null));
    }

    [Fact]
    public void NewRoomIdsAreValidAndRandom()
    {
        var a = Identifiers.NewRoomId("example.org");
        var b = Identifiers.NewRoomId("example.org");
        Assert.Matches("^![A-Za-z]{18}:example\\.org$", a);
        Assert.True(Identifiers.IsValidRoomId(a));
        Assert.NotEqual(a, b);
    }

    [Fact]
    public void RandomStringsUseLetters()
    {
        Assert.Equal("", Identifiers.RandomString(0));
        var s = Identifiers.RandomString(64);
        Assert.Matches("^[A-Za-z]{64}$", s);
        Assert.NotEqual(s, Identifiers.RandomString(64));
        Assert.Throws<ArgumentOutOfRangeException>(() => Identifiers.RandomString(-1));
    }
}

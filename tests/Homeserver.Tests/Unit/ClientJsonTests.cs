using System.Text;
using Homeserver.Errors;
using Homeserver.Matrix;

namespace Homeserver.Tests.Unit;

public class ClientJsonTests
{
    private static MatrixException Refused(byte[] utf8) => Assert.Throws<MatrixException>(() => ClientJson.ParseObject(utf8));
    private static MatrixException Refused(string json) => Refused(Encoding.UTF8.GetBytes(json));

    [Theory]
    [InlineData("{\"a\":\"x\\u0000y\"}")]
    [InlineData("{\"a\\u0000\":1}")]
    [InlineData("{\"a\":[\"\\u0000\"]}")]
    [InlineData("{\"a\":\"\\ud800\"}")]
    [InlineData("{\"a\":\"\\ud800x\"}")]
    [InlineData("{\"a\":\"\\ud800\\u0041\"}")]
    [InlineData("{\"a\":\"\\udc00\"}")]
    [InlineData("{\"a\":\"\\ud800\\ud800\\udc00\"}")]
    [InlineData("{\"\\udfff\":1}")]
    [InlineData("{\"a\":1,\"a\":2}")]
    public void Refuses_what_storage_cannot_hold_as_bad_json(string json) =>
        Assert.Equal(ErrorCodes.BadJson, Refused(json).ErrCode);

    [Theory]
    [InlineData("{\"a\": ")]
    [InlineData("hello")]
    [InlineData("{\"a\":\"\\uZZZZ\"}")]
    [InlineData("{'a':1}")]
    public void Refuses_broken_json_as_not_json(string json) =>
        Assert.Equal(ErrorCodes.NotJson, Refused(json).ErrCode);

    [Fact]
    public void Refuses_invalid_utf8_as_not_json()
    {
        Assert.Equal(ErrorCodes.NotJson, Refused([.. "{\"a\":\""u8, 0xFF, 0xFE, .. "\"}"u8]).ErrCode);
        // A surrogate encoded in UTF-8 (CESU) is not UTF-8 either.
        Assert.Equal(ErrorCodes.NotJson, Refused([.. "{\"a\":\""u8, 0xED, 0xA0, 0x80, .. "\"}"u8]).ErrCode);
        Assert.Equal(ErrorCodes.NotJson, Refused([.. "{\"a\":\""u8, 0xC0, 0x80, .. "\"}"u8]).ErrCode);
    }

    [Theory]
    [InlineData("[1]")]
    [InlineData("\"x\"")]
    [InlineData("1")]
    [InlineData("null")]
    public void A_body_must_be_an_object(string json) => Assert.Equal(ErrorCodes.BadJson, Refused(json).ErrCode);

    [Fact]
    public void Nesting_is_bounded()
    {
        string Nested(int levels) => new string('[', levels - 1) is var open ? "{\"a\":" + open + new string(']', levels - 1) + "}" : "";
        Assert.NotNull(ClientJson.ParseObject(Encoding.UTF8.GetBytes(Nested(ClientJson.MaxDepth))));
        Assert.Equal(ErrorCodes.BadJson, Refused(Nested(ClientJson.MaxDepth + 1)).ErrCode);
        Assert.Equal(ErrorCodes.BadJson, Refused(Nested(10_000)).ErrCode);
    }

    [Fact]
    public void Accepts_valid_escapes_and_keeps_them()
    {
        var obj = ClientJson.ParseObject("{\"a\":\"\\ud83d\\ude00 \\u00e9 \\\\u0000 \\n\",\"\\ufffe\":\"\\uffff\"}"u8.ToArray());
        Assert.Equal("😀 é \\u0000 \n", obj["a"]!.GetValue<string>());
        Assert.Equal("\uffff", obj["\ufffe"]!.GetValue<string>());
    }

    [Fact]
    public void A_string_from_dotnet_with_a_lone_surrogate_is_not_json() =>
        Assert.Equal(ErrorCodes.NotJson, Assert.Throws<MatrixException>(() => ClientJson.Parse("{\"a\":\"\ud800\"}")).ErrCode);

    [Fact]
    public void Storable_text_has_no_nul_and_no_lone_surrogate()
    {
        // Built in code: attribute arguments cannot carry lone surrogates (they arrive as U+FFFD).
        Assert.True(ClientJson.IsStorable("plain"));
        Assert.True(ClientJson.IsStorable("😀"));
        Assert.False(ClientJson.IsStorable("a\0b"));
        Assert.False(ClientJson.IsStorable(new string((char)0xD800, 1)));
        Assert.False(ClientJson.IsStorable("x" + (char)0xDC00));
        Assert.False(ClientJson.IsStorable(new string((char)0xD800, 1) + "😀"));
    }

    [Fact]
    public void Quotes_are_short()
    {
        var quoted = Quote.Short(new string('x', 900_000));
        Assert.True(quoted.Length <= Quote.MaxQuotedLength + 1);
        Assert.Equal("short", Quote.Short("short"));
        // A surrogate pair at the cut stays whole or goes.
        var pairAtCut = new string('x', Quote.MaxQuotedLength - 1) + "😀" + "tail";
        Assert.False(char.IsHighSurrogate(Quote.Short(pairAtCut)[^2]));
    }
}

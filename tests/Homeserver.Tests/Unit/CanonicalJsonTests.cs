using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Homeserver.Errors;
using Homeserver.Matrix;

namespace Homeserver.Tests.Unit;

public class CanonicalJsonTests
{
    // The examples of the spec appendix "Canonical JSON", input → expected output.
    [Theory]
    [InlineData("{}", "{}")]
    [InlineData("{\n    \"one\": 1,\n    \"two\": \"Two\"\n}", "{\"one\":1,\"two\":\"Two\"}")]
    [InlineData("{\n    \"b\": \"2\",\n    \"a\": \"1\"\n}", "{\"a\":\"1\",\"b\":\"2\"}")]
    [InlineData("{\"b\":\"2\",\"a\":\"1\"}", "{\"a\":\"1\",\"b\":\"2\"}")]
    [InlineData(
        "{\"auth\":{\"success\":true,\"mxid\":\"@john.doe:example.com\",\"profile\":{\"display_name\":\"John Doe\",\"three_pids\":[{\"medium\":\"email\",\"address\":\"john.doe@example.org\"},{\"medium\":\"msisdn\",\"address\":\"123456789\"}]}}}",
        "{\"auth\":{\"mxid\":\"@john.doe:example.com\",\"profile\":{\"display_name\":\"John Doe\",\"three_pids\":[{\"address\":\"john.doe@example.org\",\"medium\":\"email\"},{\"address\":\"123456789\",\"medium\":\"msisdn\"}]},\"success\":true}}")]
    [InlineData("{\"a\": \"日本語\"}", "{\"a\":\"日本語\"}")]
    [InlineData("{\"本\": 2, \"日\": 1}", "{\"日\":1,\"本\":2}")]
    [InlineData("{\"a\": \"\\u65E5\"}", "{\"a\":\"日\"}")]
    [InlineData("{\"a\": null}", "{\"a\":null}")]
    [InlineData("{\"a\": -0, \"b\": 1e10}", "{\"a\":0,\"b\":10000000000}")]
    public void SpecExamples(string input, string expected)
    {
        Assert.Equal(expected, CanonicalJson.Encode(JsonNode.Parse(input)));
        using var doc = JsonDocument.Parse(input);
        Assert.Equal(expected, CanonicalJson.Encode(doc.RootElement));
    }

    [Fact]
    public void Utf8OutputIsRawUtf8()
    {
        var bytes = CanonicalJson.EncodeToUtf8(JsonNode.Parse("{\"a\":\"日\"}"));
        Assert.Equal(new byte[] { (byte)'{', (byte)'"', (byte)'a', (byte)'"', (byte)':', (byte)'"', 0xE6, 0x97, 0xA5, (byte)'"', (byte)'}' }, bytes);
    }

    [Fact]
    public void EscapesOnlyWhatTheGrammarRequires()
    {
        var s = "q\" b\\ \b\f\n\r\t \u0000\u0001\u001f \u007f / < > & ' é \u2028";
        var encoded = CanonicalJson.Encode(JsonValue.Create(s));
        Assert.Equal("\"q\\\" b\\\\ \\b\\f\\n\\r\\t \\u0000\\u0001\\u001f \u007f / < > & ' é \u2028\"", encoded);
    }

    [Fact]
    public void ControlCharacterEscapesUseLowercaseHex()
    {
        Assert.Equal("\"\\u001b\\u001e\"", CanonicalJson.Encode(JsonValue.Create("\u001b\u001e")));
    }

    [Fact]
    public void KeysSortByCodePointNotUtf16()
    {
        // U+1F600 (surrogates D83D DE00) is above U+FF61 by code point but below it in UTF-16 code units.
        var obj = new JsonObject { ["\uFF61"] = 1, ["\U0001F600"] = 2, ["a"] = 3, ["\u00e9"] = 4 };
        Assert.Equal("{\"a\":3,\"é\":4,\"\uFF61\":1,\"\U0001F600\":2}", CanonicalJson.Encode(obj));
        Assert.True(CanonicalJson.CompareByCodePoint("\uFF61", "\U0001F600") < 0);
        Assert.True(string.CompareOrdinal("\uFF61", "\U0001F600") > 0);
    }

    [Fact]
    public void SortsNestedObjectsAndKeepsArrayOrder()
    {
        var node = JsonNode.Parse("{\"z\":[3,1,{\"y\":1,\"x\":2}],\"a\":{\"c\":true,\"b\":false}}");
        Assert.Equal("{\"a\":{\"b\":false,\"c\":true},\"z\":[3,1,{\"x\":2,\"y\":1}]}", CanonicalJson.Encode(node));
    }

    [Fact]
    public void EncodesClrValues()
    {
        var obj = new JsonObject { ["i"] = 5, ["l"] = 9007199254740991L, ["d"] = 3.0, ["neg"] = -12, ["s"] = "x", ["t"] = true, ["n"] = null };
        Assert.Equal("{\"d\":3,\"i\":5,\"l\":9007199254740991,\"n\":null,\"neg\":-12,\"s\":\"x\",\"t\":true}", CanonicalJson.Encode(obj));
    }

    [Theory]
    [InlineData("{\"a\":1.5}")]
    [InlineData("{\"a\":9007199254740992}")]
    [InlineData("{\"a\":-9007199254740992}")]
    [InlineData("{\"a\":[1,2,0.1]}")]
    [InlineData("{\"a\":1e400}")]
    [InlineData("{\"a\":123456789012345678901234567890}")]
    public void RejectsNonIntegersAndOutOfRange(string json)
    {
        var e = Assert.Throws<MatrixException>(() => CanonicalJson.Encode(JsonNode.Parse(json)));
        Assert.Equal(ErrorCodes.BadJson, e.ErrCode);
        Assert.Throws<MatrixException>(() => CanonicalJson.Validate(JsonNode.Parse(json)));
        Assert.False(CanonicalJson.IsValid(JsonNode.Parse(json)));
        using var doc = JsonDocument.Parse(json);
        Assert.Throws<MatrixException>(() => CanonicalJson.Encode(doc.RootElement));
    }

    [Fact]
    public void AcceptsBoundaryIntegers()
    {
        Assert.Equal("[9007199254740991,-9007199254740991]",
            CanonicalJson.Encode(JsonNode.Parse("[9007199254740991,-9007199254740991]")));
        Assert.True(CanonicalJson.IsValid(JsonNode.Parse("{\"a\":{\"b\":[1,2,{\"c\":-3}]}}")));
    }

    [Fact]
    public void RejectsNaNAndLoneSurrogates()
    {
        Assert.Throws<MatrixException>(() => CanonicalJson.Encode(JsonValue.Create(double.NaN)));
        Assert.Throws<MatrixException>(() => CanonicalJson.Encode(JsonValue.Create("bad \ud800 string")));
        Assert.Throws<MatrixException>(() => CanonicalJson.Validate(new JsonObject { ["k"] = "\udc00" }));
    }

    [Fact]
    public void ParseStrictRejectsDuplicateKeysAndBadNumbers()
    {
        Assert.Equal(ErrorCodes.BadJson, Assert.Throws<MatrixException>(() => CanonicalJson.ParseStrict("{\"a\":1,\"a\":2}")).ErrCode);
        Assert.Equal(ErrorCodes.BadJson, Assert.Throws<MatrixException>(() => CanonicalJson.ParseStrict("{\"a\":{\"b\":1,\"b\":1}}")).ErrCode);
        Assert.Equal(ErrorCodes.BadJson, Assert.Throws<MatrixException>(() => CanonicalJson.ParseStrict("{\"a\":0.5}")).ErrCode);
        Assert.Equal(ErrorCodes.NotJson, Assert.Throws<MatrixException>(() => CanonicalJson.ParseStrict("{\"a\":")).ErrCode);
        Assert.Equal(ErrorCodes.NotJson, Assert.Throws<MatrixException>(() => CanonicalJson.ParseObject("[1]")).ErrCode);
        Assert.Equal("{\"a\":1,\"b\":[true]}", CanonicalJson.Encode(CanonicalJson.ParseObject("{\"b\":[true],\"a\":1}")));
    }

    [Fact]
    public void DuplicateKeysInJsonElementAreRejected()
    {
        using var doc = JsonDocument.Parse("{\"a\":1,\"a\":2}");
        Assert.Throws<MatrixException>(() => CanonicalJson.Encode(doc.RootElement));
    }

    [Fact]
    public void EncodeWithoutSkipsTopLevelKeysOnly()
    {
        var obj = JsonNode.Parse("{\"b\":1,\"signatures\":{\"x\":1},\"unsigned\":{},\"a\":{\"signatures\":2}}")!.AsObject();
        var bytes = CanonicalJson.EncodeToUtf8Without(obj, "signatures", "unsigned");
        Assert.Equal("{\"a\":{\"signatures\":2},\"b\":1}", Encoding.UTF8.GetString(bytes));
        Assert.True(obj.ContainsKey("signatures")); // input untouched
    }

    [Fact]
    public void RejectsExcessiveNesting()
    {
        JsonNode node = new JsonArray();
        for (var i = 0; i < 200; i++) node = new JsonArray(node);
        Assert.Throws<MatrixException>(() => CanonicalJson.Encode(node));
    }

    // Strings are written in runs between the characters that need escaping: escapes at the start, the end, side by
    // side and between non-ASCII text must come out as the grammar says, and the hashes must be those of these bytes.
    [Fact]
    public void EscapesBetweenRunsAndHashesTheEncodedBytes()
    {
        var text = "\"a\\b\n\u0001é日😀\t\"\"x\u001f";
        var obj = new JsonObject { ["k"] = text, ["\"q"] = new JsonArray("plain", "") };
        var expected = "{\"\\\"q\":[\"plain\",\"\"],\"k\":\"\\\"a\\\\b\\n\\u0001é日😀\\t\\\"\\\"x\\u001f\"}";
        Assert.Equal(expected, CanonicalJson.Encode(obj));
        Assert.Equal(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(expected)), CanonicalJson.Sha256(obj));
        var without = CanonicalJson.EncodeToUtf8Without(obj, "k");
        Assert.Equal("{\"\\\"q\":[\"plain\",\"\"]}", Encoding.UTF8.GetString(without));
        Assert.Equal(System.Security.Cryptography.SHA256.HashData(without), CanonicalJson.Sha256Without(obj, "k"));
        // The builder is reused per thread: a second, shorter encoding holds nothing of the first.
        Assert.Equal("{\"a\":1}", CanonicalJson.Encode(new JsonObject { ["a"] = 1 }));
    }
}

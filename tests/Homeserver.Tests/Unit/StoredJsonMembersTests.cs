using System.Text;
using System.Text.Json;
using Homeserver.Matrix;

namespace Homeserver.Tests.Unit;

/// <summary>The members a scan of a stored object's bytes finds are the ones a JSON reader reads, byte for byte; a
/// name spelled with an escape fails the scan (the caller then reads the object).</summary>
public sealed class StoredJsonMembersTests
{
    public static TheoryData<string> Objects => new()
    {
        """{"auth_events":["$a}","$b]"],"content":{"body":"a,b}c]d\"e\\","n":-1.5e3,"t":true,"f":false,"z":null,"deep":[[{"k":"}"}],{}]},"depth":12,"room_id":"!r:x","unsigned":{}}""",
        "{\n  \"type\" :\t\"m.room.name\",\r\n  \"content\": {\"name\" : \"n\" } ,\"depth\": 7 , \"u\" : [ 1 , 2 ] }",
        """{"a":"\u00e9 😀 \\u0041","b":0,"c":[]}""",
        """{"only":{}}""",
        "{ }",
        "{}",
    };

    [Theory]
    [MemberData(nameof(Objects))]
    public void The_members_are_the_ones_a_reader_reads(string json)
    {
        var bytes = Encoding.UTF8.GetBytes(json);
        var expected = new List<(string Member, string Key, string Value)>();
        var reader = new Utf8JsonReader(bytes);
        reader.Read();
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var start = (int)reader.TokenStartIndex;
            var key = reader.GetString()!;
            reader.Read();
            var valueStart = (int)reader.TokenStartIndex;
            reader.Skip();
            var end = (int)reader.BytesConsumed;
            expected.Add((Encoding.UTF8.GetString(bytes, start, end - start), key, Encoding.UTF8.GetString(bytes, valueStart, end - valueStart)));
        }

        var found = new List<(string Member, string Key, string Value)>();
        var members = new StoredJsonMembers(bytes);
        while (members.Next(out var member, out var name, out var value))
            found.Add((Encoding.UTF8.GetString(member), Encoding.UTF8.GetString(name), Encoding.UTF8.GetString(value)));
        Assert.False(members.Failed);
        Assert.Equal(expected, found);
    }

    [Theory]
    [InlineData("""{"a":1,"\u0062":2}""")] // a name spelled with an escape
    [InlineData("""{"a":1""")] // cut short
    [InlineData("""{"a":"x""")]
    [InlineData("""{"a":[1,2}""")]
    [InlineData("""{"a":}""")] // no value
    [InlineData("""[1,2]""")] // not an object
    [InlineData("")]
    public void What_it_cannot_tell_fails_the_scan(string json)
    {
        var members = new StoredJsonMembers(Encoding.UTF8.GetBytes(json));
        while (members.Next(out _, out _, out _))
        {
        }
        Assert.True(members.Failed);
    }
}

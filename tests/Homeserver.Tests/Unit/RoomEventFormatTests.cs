using System.Text.Json;
using System.Text.Json.Nodes;
using Homeserver.Rooms;

namespace Homeserver.Tests.Unit;

/// <summary>An event's client form written from its stored bytes (what a sync writes for its state) is the form
/// <see cref="RoomEventFormat.ToClient(StoredEvent, string?, string?, bool)"/> builds as a tree.</summary>
public sealed class RoomEventFormatTests
{
    private static StoredEvent Event(string json, string? deviceId = null, string? txnId = null) =>
        new("$e", "!r:x", "m.room.member", "@a:x", "@a:x", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - 5_000, 3, 0, 7, json, deviceId, txnId, false);

    public static TheoryData<string> StoredForms => new()
    {
        // As the room grain stores a state event: federation keys, unsigned with the replaced state.
        """{"type":"m.room.member","state_key":"@a:x","sender":"@a:x","room_id":"!r:x","origin_server_ts":1,"content":{"membership":"join","displayname":"Ä \"b\" \u00e9 <&> 😀"},"event_id":"$e","auth_events":["$a","$b"],"prev_events":["$p"],"depth":3,"hashes":{"sha256":"x"},"signatures":{"x":{"ed25519:a":"s"}},"unsigned":{"replaces_state":"$o","prev_content":{"membership":"invite","n":[1,2.5,-3e2,true,false,null]}}}""",
        // No unsigned at all, a stored age, escaped keys, nested arrays of objects.
        """{"type":"m.room.topic","state_key":"","content":{"topic":"t","a\u0062c":[{"x":{}},[]]},"room_id":"!r:x","origin":"x"}""",
        """{"type":"m.room.name","state_key":"","content":{"name":"n"},"unsigned":{"age":99,"transaction_id":"old","redacted_because":{"type":"m.room.redaction","content":{}}}}""",
        " { \"type\" : \"m.room.name\" ,\n \"content\" : { } , \"unsigned\" : { } } ",
        // Keys spelled with escapes are the keys they spell: a federation key goes, unsigned's age is replaced.
        """{"type":"m.room.name","\u0064epth":4,"content":{"k":"\u00e9"},"\u0075nsigned":{"a\u0067e":1,"k":"v","transaction_id":"t"}}""",
        // An unsigned that is not an object is replaced by one.
        """{"type":"m.room.name","unsigned":[1,2],"content":{}}""",
        // Values holding what ends a member or an object, inside strings and escaped; numbers and literals last in
        // their objects; an unsigned with only what is replaced; whitespace everywhere.
        """{"auth_events":["$a}","$b]"],"content":{"body":"a,b}c]d\"e\\","n":-1.5e3,"t":true,"f":false,"z":null,"deep":[[{"k":"}"}],{}]},"depth":12,"event_id":"$e","hashes":{"sha256":"x\""},"origin_server_ts":1796314334446,"prev_events":[],"room_id":"!r:x","sender":"@a:x","state_key":"","type":"m.room.topic","unsigned":{"age":5,"transaction_id":"t"}}""",
        "{\n  \"type\" :\t\"m.room.name\",\r\n  \"content\": {\"name\" : \"n\" } ,\"depth\": 7 , \"unsigned\" : { \"k\" : [ 1 , 2 ] , \"age\" : 3 } }",
        """{"content":{},"unsigned":{}}""",
        """{}""",
        // A nested key spelled with an escape, inside unsigned.
        """{"type":"m.room.name","content":{},"unsigned":{"\u0061ge":1,"k":1}}""",
    };

    [Theory]
    [MemberData(nameof(StoredForms))]
    public void Written_from_the_bytes_it_is_the_tree_form(string json)
    {
        foreach (var includeRoomId in new[] { true, false })
        foreach (var (user, device) in new[] { ("@a:x", "D"), ("@b:x", "D"), ((string?)null, (string?)null) })
        {
            var ev = Event(json, "D", "txn \"1\" <é>");
            var tree = RoomEventFormat.ToClient(ev, user, device, includeRoomId);
            var written = JsonNode.Parse(RoomEventFormat.ToClientJson(ev, user, device, includeRoomId).ToJsonString())!.AsObject();
            // The age is computed at each call; the rest must be the same.
            Assert.InRange(written["unsigned"]!["age"]!.GetValue<long>(), 5_000, 60_000);
            tree["unsigned"]!.AsObject().Remove("age");
            written["unsigned"]!.AsObject().Remove("age");
            Assert.True(JsonNode.DeepEquals(tree, written), $"tree {tree.ToJsonString()}\nwritten {written.ToJsonString()}");
        }
    }

    /// <summary>A sync's state block is one node for the whole list: what it writes is what the events write one by one,
    /// with any serializer options.</summary>
    [Fact]
    public void A_list_written_as_one_array_is_its_events_written_one_by_one()
    {
        var events = ((IEnumerable<object[]>)StoredForms).Select(row => Event((string)row[0])).ToList();
        foreach (var includeRoomId in new[] { true, false })
        foreach (var options in new[] { new JsonSerializerOptions(JsonSerializerDefaults.Web), JsonSerializerOptions.Default })
        {
            var whole = JsonNode.Parse(JsonSerializer.Serialize(
                new JsonObject { ["events"] = RoomEventFormat.ToClientJsonArray(events, includeRoomId) }, options))!["events"]!.AsArray();
            var each = JsonNode.Parse(new JsonArray(events.Select(e => RoomEventFormat.ToClientJson(e, includeRoomId: includeRoomId)).ToArray()).ToJsonString())!.AsArray();
            Assert.Equal(events.Count, whole.Count);
            foreach (var written in whole.Concat(each))
            {
                Assert.InRange(written!["unsigned"]!["age"]!.GetValue<long>(), 5_000, 60_000);
                written["unsigned"]!.AsObject().Remove("age");
            }
            Assert.True(JsonNode.DeepEquals(each, whole), $"one by one {each.ToJsonString()}\nwhole {whole.ToJsonString()}");
        }
        Assert.Equal("[]", RoomEventFormat.ToClientJsonArray([]).ToJsonString());
    }

    [Fact]
    public void It_is_written_into_a_response_as_json_and_can_be_read_as_a_tree()
    {
        var ev = Event("""{"type":"m.room.name","state_key":"","room_id":"!r:x","content":{"name":"n"},"depth":1}""");
        var response = new JsonObject { ["events"] = new JsonArray(RoomEventFormat.ToClientJson(ev, includeRoomId: false)) };
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream)) response.WriteTo(writer);
        var parsed = JsonNode.Parse(stream.ToArray())!;
        Assert.Equal("n", parsed["events"]![0]!["content"]!["name"]!.GetValue<string>());
        Assert.Null(parsed["events"]![0]!["depth"]);
        Assert.Null(parsed["events"]![0]!["room_id"]);
        Assert.Equal(JsonValueKind.Object, response["events"]![0]!.GetValueKind());
        Assert.Equal("n", response.DeepClone()["events"]![0]!["content"]!["name"]!.GetValue<string>());
    }

    /// <summary>ASP.NET Core's <c>Results.Json</c> writes with its own serializer options, where a JSON value is
    /// written by the converter those options resolve for its type: the event must still come out whole (with a
    /// resolver that looked at the type's properties it came out as <c>{}</c>, and GET /members lost every field).</summary>
    [Fact]
    public void It_is_written_whole_with_any_serializer_options()
    {
        var ev = Event("""{"type":"m.room.member","state_key":"@a:x","room_id":"!r:x","content":{"membership":"join"},"depth":1}""");
        foreach (var options in new[] { new JsonSerializerOptions(JsonSerializerDefaults.Web), new JsonSerializerOptions(JsonSerializerDefaults.General), JsonSerializerOptions.Default })
        {
            var response = new JsonObject { ["chunk"] = new JsonArray(RoomEventFormat.ToClientJson(ev)) };
            var parsed = JsonNode.Parse(JsonSerializer.Serialize(response, options))!;
            Assert.Equal("join", parsed["chunk"]![0]!["content"]!["membership"]!.GetValue<string>());
            Assert.Equal("!r:x", parsed["chunk"]![0]!["room_id"]!.GetValue<string>());
            Assert.Null(parsed["chunk"]![0]!["depth"]);
        }
    }

    /// <summary>A content field read with the reader is what a parsed document gives.</summary>
    [Theory]
    [InlineData("""{"type":"m.room.member","content":{"membership":"join","displayname":"A \"b\" \u00e9"},"unsigned":{"content":{"membership":"leave"}}}""")]
    [InlineData("""{"content":{"membership":1,"displayname":null},"x":[{"content":{"membership":"ban"}}]}""")]
    [InlineData("""{"content":"join"}""")]
    [InlineData("""{"content":{"nested":{"membership":"invite"},"membership":{"a":"join"}}}""")]
    [InlineData("""{"unsigned":{},"content":{"displayname":"first","displayname":"last"}}""")]
    [InlineData("""{"content":{"membership":"leave"},"content":{"membership":"knock"}}""")]
    [InlineData("""[]""")]
    [InlineData("""{}""")]
    public void A_content_field_read_with_the_reader_is_the_documents(string json)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(json);
        foreach (var field in new[] { "membership", "displayname", "avatar_url" })
        {
            using var doc = JsonDocument.Parse(bytes);
            var expected = doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("content", out var content)
                           && content.ValueKind == JsonValueKind.Object && content.TryGetProperty(field, out var value) && value.ValueKind == JsonValueKind.String
                ? value.GetString()
                : null;
            Assert.Equal(expected, RoomEventFormat.ContentString(bytes, field));
        }
    }
}

using System.Text.Json.Nodes;
using Homeserver.Errors;
using Homeserver.Matrix;

namespace Homeserver.Tests.Unit;

public class EventHashingTests
{
    private static JsonObject Obj(string json) => JsonNode.Parse(json)!.AsObject();

    // Spec appendix "Cryptographic Test Vectors" → "Event Signing": the hashes.sha256 the signing algorithm emits.
    [Fact]
    public void ContentHashOfMinimalSpecEvent()
    {
        var ev = Obj("""
            {"room_id":"!x:domain","sender":"@a:domain","origin":"domain","origin_server_ts":1000000,
             "signatures":{},"hashes":{},"type":"X","content":{},"prev_events":[],"auth_events":[],"depth":3,
             "unsigned":{"age_ts":1000000}}
            """);
        Assert.Equal("5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos", EventHashing.ComputeContentHash(ev));
    }

    [Fact]
    public void ContentHashOfRedactableSpecEvent()
    {
        var ev = Obj("""
            {"content":{"body":"Here is the message content"},"event_id":"$0:domain","origin":"domain",
             "origin_server_ts":1000000,"type":"m.room.message","room_id":"!r:domain","sender":"@u:domain",
             "signatures":{},"unsigned":{"age_ts":1000000}}
            """);
        Assert.Equal("onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g", EventHashing.ComputeContentHash(ev));
    }

    [Fact]
    public void AddHashesSetsVerifiableHash()
    {
        var ev = SampleMessage();
        EventHashing.AddHashes(ev);
        Assert.Equal(EventHashing.ComputeContentHash(ev), ev["hashes"]!["sha256"]!.GetValue<string>());
        Assert.True(EventHashing.VerifyContentHash(ev));

        // Changing content breaks it; changing unsigned or signatures does not.
        ev["unsigned"] = new JsonObject { ["age"] = 5 };
        ev["signatures"] = new JsonObject { ["x"] = new JsonObject() };
        Assert.True(EventHashing.VerifyContentHash(ev));
        ev["content"]!["body"] = "tampered";
        Assert.False(EventHashing.VerifyContentHash(ev));
    }

    [Fact]
    public void ContentHashIsUnpaddedStandardBase64()
    {
        var hash = EventHashing.ComputeContentHash(SampleMessage());
        Assert.Equal(43, hash.Length);
        Assert.DoesNotContain("=", hash);
        Assert.DoesNotContain("-", hash);
        Assert.DoesNotContain("_", hash);
    }

    [Fact]
    public void EventIdIsDeterministicUrlSafeAndIgnoresKeyOrder()
    {
        var a = SampleMessage();
        EventHashing.AddHashes(a);
        var b = Obj(a.ToJsonString());
        // Same event, keys in a different order.
        var reordered = new JsonObject();
        foreach (var key in b.Select(kv => kv.Key).Reverse().ToList()) reordered[key] = b[key]!.DeepClone();

        var id = EventHashing.ComputeEventId(a, "10");
        Assert.Equal(id, EventHashing.ComputeEventId(b, "10"));
        Assert.Equal(id, EventHashing.ComputeEventId(reordered, "10"));
        Assert.StartsWith("$", id);
        Assert.Equal(44, id.Length);
        Assert.DoesNotContain("+", id);
        Assert.DoesNotContain("/", id);
        Assert.DoesNotContain("=", id);
        Assert.True(Identifiers.IsValidEventId(id));
    }

    [Fact]
    public void EventIdMatchesHandComputedReferenceHash()
    {
        var ev = SampleMessage();
        EventHashing.AddHashes(ev);
        // Redacted form of a message: content emptied, unsigned and signatures gone.
        var expectedBytes = System.Text.Encoding.UTF8.GetBytes(
            "{\"auth_events\":[\"$auth\"],\"content\":{},\"depth\":7,\"hashes\":{\"sha256\":\"" + ev["hashes"]!["sha256"] +
            "\"},\"origin_server_ts\":1700000000000,\"prev_events\":[\"$prev\"],\"room_id\":\"!room:example.org\"," +
            "\"sender\":\"@alice:example.org\",\"type\":\"m.room.message\"}");
        var expected = "$" + Convert.ToBase64String(System.Security.Cryptography.SHA256.HashData(expectedBytes))
            .TrimEnd('=').Replace('+', '-').Replace('/', '_');
        Assert.Equal(expected, EventHashing.ComputeEventId(ev, "10"));
    }

    [Fact]
    public void EventIdDoesNotChangeWhenUnprotectedFieldsChange()
    {
        var ev = SampleMessage();
        EventHashing.AddHashes(ev);
        var id = EventHashing.ComputeEventId(ev, "10");

        var changed = Obj(ev.ToJsonString());
        changed["content"]!["body"] = "something else entirely";
        changed["unsigned"] = new JsonObject { ["age"] = 1234 };
        changed["signatures"] = new JsonObject { ["example.org"] = new JsonObject { ["ed25519:a"] = "sig" } };
        changed["event_id"] = id;
        Assert.Equal(id, EventHashing.ComputeEventId(changed, "10"));

        // The redacted form has the same id: that is what lets servers verify redacted events.
        Assert.Equal(id, EventHashing.ComputeEventId(Redaction.Redact(ev, "10"), "10"));
    }

    [Fact]
    public void EventIdChangesWhenProtectedFieldsChange()
    {
        var ev = SampleMessage();
        EventHashing.AddHashes(ev);
        var id = EventHashing.ComputeEventId(ev, "10");

        foreach (var mutate in new Action<JsonObject>[]
                 {
                     e => e["depth"] = 8,
                     e => e["sender"] = "@bob:example.org",
                     e => e["prev_events"] = new JsonArray("$other"),
                     e => e["hashes"]!["sha256"] = "different",
                     e => e["origin_server_ts"] = 1,
                 })
        {
            var copy = Obj(ev.ToJsonString());
            mutate(copy);
            Assert.NotEqual(id, EventHashing.ComputeEventId(copy, "10"));
        }
    }

    [Fact]
    public void OriginIsProtectedInV10ButNotV11()
    {
        var ev = SampleMessage();
        ev["origin"] = "example.org";
        var other = Obj(ev.ToJsonString());
        other["origin"] = "elsewhere.org";
        Assert.NotEqual(EventHashing.ComputeEventId(ev, "10"), EventHashing.ComputeEventId(other, "10"));
        Assert.Equal(EventHashing.ComputeEventId(ev, "11"), EventHashing.ComputeEventId(other, "11"));
    }

    [Fact]
    public void RoomVersion3UsesStandardBase64AndOldVersionsHaveNoDerivedIds()
    {
        // Among a few events some hash contains '+' or '/', so the two alphabets differ visibly.
        var sawDifference = false;
        for (var i = 0; i < 50; i++)
        {
            var ev = SampleMessage();
            ev["depth"] = i;
            var v3 = EventHashing.ComputeEventId(ev, "3");
            var v4 = EventHashing.ComputeEventId(ev, "4");
            Assert.Equal(v4, v3.Replace('+', '-').Replace('/', '_'));
            sawDifference |= v3 != v4;
        }
        Assert.True(sawDifference);
        Assert.Equal(ErrorCodes.UnsupportedRoomVersion,
            Assert.Throws<MatrixException>(() => EventHashing.ComputeEventId(SampleMessage(), "1")).ErrCode);
        Assert.Throws<MatrixException>(() => EventHashing.ComputeEventId(SampleMessage(), "99"));
    }

    [Fact]
    public void ComputingTheIdDoesNotMutateTheEvent()
    {
        var ev = SampleMessage();
        var before = ev.ToJsonString();
        EventHashing.ComputeEventId(ev, "10");
        EventHashing.ComputeContentHash(ev);
        Assert.Equal(before, ev.ToJsonString());
    }

    internal static JsonObject SampleMessage() => new()
    {
        ["type"] = "m.room.message",
        ["room_id"] = "!room:example.org",
        ["sender"] = "@alice:example.org",
        ["content"] = new JsonObject { ["msgtype"] = "m.text", ["body"] = "hello" },
        ["origin_server_ts"] = 1700000000000L,
        ["depth"] = 7,
        ["prev_events"] = new JsonArray("$prev"),
        ["auth_events"] = new JsonArray("$auth"),
        ["unsigned"] = new JsonObject { ["transaction_id"] = "txn1" },
    };

    // The unpadded forms are the standard ones with '=' dropped (and, URL-safe, '+' and '/' replaced), for every
    // padding length.
    [Fact]
    public void UnpaddedBase64MatchesTheStandardEncoding()
    {
        var random = new Random(13);
        for (var length = 0; length < 70; length++)
        {
            var bytes = new byte[length];
            random.NextBytes(bytes);
            var standard = Convert.ToBase64String(bytes).TrimEnd('=');
            Assert.Equal(standard, EventHashing.ToUnpaddedBase64(bytes));
            Assert.Equal(standard.Replace('+', '-').Replace('/', '_'), EventHashing.ToUnpaddedUrlSafeBase64(bytes));
        }
    }
}

using System.Buffers;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Homeserver.Matrix;

namespace Homeserver.Rooms;

/// <summary>
/// Turns stored events into the client format (spec "ClientEvent"): the federation-only keys go, <c>unsigned.age</c>
/// is computed now, and the sender's own device gets its <c>unsigned.transaction_id</c> back.
/// </summary>
public static class RoomEventFormat
{
    private static readonly string[] FederationOnlyKeys =
        ["auth_events", "prev_events", "hashes", "signatures", "depth", "origin", "prev_state", "membership"];

    private static readonly byte[][] FederationOnlyKeysUtf8 = FederationOnlyKeys.Select(System.Text.Encoding.UTF8.GetBytes).ToArray();

    /// <param name="ev">The stored event.</param>
    /// <param name="userId">The requesting user (with <paramref name="deviceId"/>: whether to add transaction_id).</param>
    /// <param name="includeRoomId">False for /sync, where events are grouped under their room.</param>
    public static JsonObject ToClient(StoredEvent ev, string? userId = null, string? deviceId = null, bool includeRoomId = true)
    {
        var json = JsonNode.Parse(ev.Utf8Json) as JsonObject ?? new JsonObject();
        foreach (var key in FederationOnlyKeys) json.Remove(key);
        if (!includeRoomId) json.Remove("room_id");
        var unsigned = json["unsigned"] as JsonObject ?? new JsonObject();
        unsigned["age"] = Math.Max(0, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - ev.OriginServerTs);
        if (ev.TxnId is not null && ev.DeviceId is not null && userId == ev.Sender && deviceId == ev.DeviceId)
            unsigned["transaction_id"] = ev.TxnId;
        json["unsigned"] = unsigned;
        return json;
    }

    /// <summary>
    /// The client format of a stored event (as <see cref="ToClient(StoredEvent, string?, string?, bool)"/> makes it) as a
    /// node that writes itself from the event's UTF-8 JSON when the response is written, copying every value as it is
    /// stored: no tree is built. A sync with the full state renders tens of thousands of state events; as trees they
    /// weighed about 2 KB each, several hundred MB for one response that the collector then kept committed. The node
    /// is for writing: read it (or change it) and it is parsed into a tree first.
    /// </summary>
    public static JsonNode ToClientJson(StoredEvent ev, string? userId = null, string? deviceId = null, bool includeRoomId = true)
    {
        var transactionId = ev.TxnId is not null && ev.DeviceId is not null && userId == ev.Sender && deviceId == ev.DeviceId ? ev.TxnId : null;
        var age = Math.Max(0, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - ev.OriginServerTs);
        return JsonValue.Create(new StoredClientEvent(ev.Utf8Json, age, transactionId, includeRoomId), StoredClientEvent.TypeInfo)!;
    }

    /// <summary>
    /// As <see cref="ToClientJson"/> (without transaction ids) for a list of events, as one node that writes the whole
    /// array: a full-state sync of 300 rooms of 300 members made 90,000 nodes, each written through the serializer's
    /// per-value path with a buffer of its own. Written, each event is rendered into one buffer the array rents for
    /// all of them. For writing only, as <see cref="ToClientJson"/>'s node is.
    /// </summary>
    public static JsonNode ToClientJsonArray(IReadOnlyList<StoredEvent> events, bool includeRoomId = true) =>
        JsonValue.Create(new StoredClientEventArray(events, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), includeRoomId),
            StoredClientEventArray.TypeInfo)!;

    [JsonConverter(typeof(Converter))]
    private sealed class StoredClientEventArray(IReadOnlyList<StoredEvent> events, long now, bool includeRoomId)
    {
        public static readonly JsonTypeInfo<StoredClientEventArray> TypeInfo =
            JsonMetadataServices.CreateValueInfo<StoredClientEventArray>(
                new JsonSerializerOptions { TypeInfoResolver = JsonTypeInfoResolver.Combine() }, new Converter());

        public void WriteTo(Utf8JsonWriter writer)
        {
            var longest = 0;
            foreach (var e in events) longest = Math.Max(longest, e.Utf8Json.Length);
            var buffer = ArrayPool<byte>.Shared.Rent(StoredClientEvent.MaxLength(longest, encodedTransactionIdLength: null));
            try
            {
                writer.WriteStartArray();
                foreach (var e in events)
                {
                    var rendered = new StoredClientEvent(e.Utf8Json, Math.Max(0, now - e.OriginServerTs), null, includeRoomId);
                    writer.WriteRawValue(buffer.AsSpan(0, rendered.RenderTo(buffer, default)), skipInputValidation: true);
                }
                writer.WriteEndArray();
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }

        private sealed class Converter : JsonConverter<StoredClientEventArray>
        {
            public override StoredClientEventArray Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
                throw new NotSupportedException("rendered events are only written");

            public override void Write(Utf8JsonWriter writer, StoredClientEventArray value, JsonSerializerOptions options) => value.WriteTo(writer);
        }
    }

    /// <summary>What <see cref="ToClientJson"/> writes: the stored JSON without the federation-only keys (and the room id
    /// when asked), <c>unsigned</c> with the age (and the transaction id) set. The converter is named on the type too:
    /// a node written with serializer options other than its own (ASP.NET Core's <c>Results.Json</c>) is written by
    /// the converter those options resolve for the type, and a resolver that looked at this class's properties (it has
    /// none) would write <c>{}</c>.</summary>
    [JsonConverter(typeof(Converter))]
    private sealed class StoredClientEvent(byte[] utf8Json, long age, string? transactionId, bool includeRoomId)
    {
        public static readonly JsonTypeInfo<StoredClientEvent> TypeInfo =
            JsonMetadataServices.CreateValueInfo<StoredClientEvent>(
                // No resolver is asked (the converter writes everything), but options must name one to be used.
                new JsonSerializerOptions { TypeInfoResolver = JsonTypeInfoResolver.Combine() }, new Converter());

        /// <summary>Writes the event as one raw value, assembled by copying each kept member's stored bytes (its name,
        /// colon and value as they are) into a pooled buffer. A full-state sync writes 90,000 of these; written member
        /// by member (a name decoded to a string, then written, escaped and validated again) they took about 0.5 s of
        /// the 24 MB response.</summary>
        public void WriteTo(Utf8JsonWriter writer)
        {
            var encodedTransactionId = transactionId is null ? default : JsonEncodedText.Encode(transactionId);
            var buffer = ArrayPool<byte>.Shared.Rent(MaxLength(utf8Json.Length, transactionId is null ? null : encodedTransactionId.EncodedUtf8Bytes.Length));
            try
            {
                writer.WriteRawValue(buffer.AsSpan(0, RenderTo(buffer, encodedTransactionId)), skipInputValidation: true);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }

        /// <summary>How long the rendering of stored JSON of <paramref name="storedLength"/> bytes can be: the stored
        /// bytes (which only lose members) and what is added, "unsigned":{} with a comma, the age, and
        /// ,"transaction_id":"…" (null: without one).</summary>
        public static int MaxLength(int storedLength, int? encodedTransactionIdLength) =>
            storedLength + 64 + (encodedTransactionIdLength is { } length ? 24 + length : 0);

        /// <summary>Renders the event into <paramref name="output"/> (at least <see cref="MaxLength"/> long for it); its
        /// length.</summary>
        public int RenderTo(Span<byte> output, JsonEncodedText encodedTransactionId)
        {
            var length = RenderScanned(output, encodedTransactionId);
            return length >= 0 ? length : Render(output, encodedTransactionId);
        }

        /// <summary>
        /// What <see cref="Render"/> writes, with the members found by <see cref="StoredJsonMembers"/> instead of the
        /// reader; -1 (nothing usable written) where that cannot tell (a key spelled with an escape). In a new process
        /// the reader's string search runs unoptimised for most of the first full-state sync, and rendering its 90,000
        /// state events with the reader was a sixth of that sync's CPU.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private int RenderScanned(Span<byte> output, JsonEncodedText encodedTransactionId)
        {
            var json = new RawJson(output);
            json.StartObject();
            var members = new StoredJsonMembers(utf8Json);
            var wroteUnsigned = false;
            while (members.Next(out var member, out var key, out var value))
            {
                if (IsFederationOnly(key) || (!includeRoomId && key.SequenceEqual("room_id"u8))) continue;
                if (!key.SequenceEqual("unsigned"u8))
                {
                    json.Member(member);
                    continue;
                }
                // A stored unsigned that is not an object is replaced by one, as ToClient does.
                if (!RenderUnsignedScanned(ref json, value[0] == (byte)'{' ? value : default, encodedTransactionId)) return -1;
                wroteUnsigned = true;
            }
            if (members.Failed) return -1;
            if (!wroteUnsigned) RenderUnsignedScanned(ref json, default, encodedTransactionId);
            json.EndObject();
            return json.Length;
        }

        // "unsigned" with the members of the stored one (none when empty) but the age and transaction id, then those as
        // they are now; false where the stored one cannot be scanned.
        private bool RenderUnsignedScanned(ref RawJson json, ReadOnlySpan<byte> stored, JsonEncodedText encodedTransactionId)
        {
            json.Member("\"unsigned\":"u8);
            json.StartObject();
            if (!stored.IsEmpty)
            {
                var members = new StoredJsonMembers(stored);
                while (members.Next(out var member, out var key, out _))
                    if (!key.SequenceEqual("age"u8) && !(transactionId is not null && key.SequenceEqual("transaction_id"u8)))
                        json.Member(member);
                if (members.Failed) return false;
            }
            RenderAdded(ref json, encodedTransactionId);
            json.EndObject();
            return true;
        }

        // Inlined into the optimised scanner: called for every member of every state event of a full-state sync.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static bool IsFederationOnly(ReadOnlySpan<byte> key)
        {
            foreach (var federationKey in FederationOnlyKeysUtf8)
                if (key.SequenceEqual(federationKey)) return true;
            return false;
        }

        private int Render(Span<byte> output, JsonEncodedText encodedTransactionId)
        {
            var reader = new Utf8JsonReader(utf8Json);
            var json = new RawJson(output);
            json.StartObject();
            var wroteUnsigned = false;
            // ToClient replaces a body that is not an object by an empty one (a stored event always is one).
            if (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    var memberStart = (int)reader.TokenStartIndex;
                    var dropped = IsFederationOnly(ref reader) || (!includeRoomId && reader.ValueTextEquals("room_id"u8));
                    var isUnsigned = !dropped && reader.ValueTextEquals("unsigned"u8);
                    reader.Read();
                    if (dropped) reader.Skip();
                    else if (isUnsigned)
                    {
                        RenderUnsigned(ref reader, ref json, encodedTransactionId);
                        wroteUnsigned = true;
                    }
                    else json.Member(CopiedMember(ref reader, memberStart));
                }
            if (!wroteUnsigned) RenderUnsignedScanned(ref json, default, encodedTransactionId);
            json.EndObject();
            return json.Length;
        }

        // "unsigned" (the reader at the stored one's value) with the stored members, then the age and transaction id,
        // replacing stored ones as ToClient does.
        private void RenderUnsigned(ref Utf8JsonReader reader, ref RawJson json, JsonEncodedText encodedTransactionId)
        {
            json.Member("\"unsigned\":"u8);
            json.StartObject();
            if (reader.TokenType == JsonTokenType.StartObject)
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    var memberStart = (int)reader.TokenStartIndex;
                    var replaced = reader.ValueTextEquals("age"u8) || (transactionId is not null && reader.ValueTextEquals("transaction_id"u8));
                    reader.Read();
                    if (replaced) reader.Skip();
                    else json.Member(CopiedMember(ref reader, memberStart));
                }
            else reader.Skip();
            RenderAdded(ref json, encodedTransactionId);
            json.EndObject();
        }

        private void RenderAdded(ref RawJson json, JsonEncodedText encodedTransactionId)
        {
            json.Member("\"age\":"u8);
            json.Number(age);
            if (transactionId is null) return;
            json.Member("\"transaction_id\":\""u8);
            json.Append(encodedTransactionId.EncodedUtf8Bytes);
            json.Append("\""u8);
        }

        // The member whose name starts at memberStart, its value at the reader: its stored bytes, name to value's end.
        private ReadOnlySpan<byte> CopiedMember(ref Utf8JsonReader reader, int memberStart)
        {
            reader.Skip();
            return utf8Json.AsSpan(memberStart, (int)reader.BytesConsumed - memberStart);
        }

        private static bool IsFederationOnly(ref Utf8JsonReader reader)
        {
            foreach (var key in FederationOnlyKeysUtf8)
                if (reader.ValueTextEquals(key)) return true;
            return false;
        }

        /// <summary>JSON bytes appended to a buffer large enough for them; a member after the first of its object gets
        /// its comma.</summary>
        private ref struct RawJson(Span<byte> output)
        {
            private readonly Span<byte> _output = output;
            private bool _first;

            public int Length { get; private set; }

            public void Append(scoped ReadOnlySpan<byte> bytes)
            {
                bytes.CopyTo(_output[Length..]);
                Length += bytes.Length;
            }

            public void StartObject()
            {
                Append("{"u8);
                _first = true;
            }

            public void EndObject()
            {
                Append("}"u8);
                _first = false;
            }

            /// <summary>A member, or its start (the name and colon, its value appended next).</summary>
            public void Member(scoped ReadOnlySpan<byte> bytes)
            {
                if (!_first) Append(","u8);
                _first = false;
                Append(bytes);
            }

            public void Number(long value)
            {
                value.TryFormat(_output[Length..], out var written);
                Length += written;
            }
        }

        private sealed class Converter : JsonConverter<StoredClientEvent>
        {
            public override StoredClientEvent Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
                throw new NotSupportedException("a rendered event is only written");

            public override void Write(Utf8JsonWriter writer, StoredClientEvent value, JsonSerializerOptions options) => value.WriteTo(writer);
        }
    }

    /// <summary>The federation format (a filter's <c>event_format: federation</c>): the event as stored and signed, with
    /// the same <c>unsigned</c> a client gets.</summary>
    public static JsonObject ToFederation(StoredEvent ev, string? userId = null, string? deviceId = null)
    {
        var json = JsonNode.Parse(ev.Utf8Json) as JsonObject ?? new JsonObject();
        json["unsigned"] = ToClient(ev, userId, deviceId)["unsigned"]!.DeepClone();
        return json;
    }

    /// <summary>The client format of an event being built (no age: it is new), e.g. for <c>redacted_because</c>.</summary>
    public static JsonObject ToClient(JsonObject ev)
    {
        var copy = (JsonObject)ev.DeepClone();
        foreach (var key in FederationOnlyKeys) copy.Remove(key);
        return copy;
    }

    public static JsonArray ToClientArray(IEnumerable<StoredEvent> events, string? userId = null, string? deviceId = null)
    {
        var array = new JsonArray();
        foreach (var e in events) array.Add(ToClient(e, userId, deviceId));
        return array;
    }

    /// <summary>A string field of an event's content without building a DOM.</summary>
    public static string? ContentString(string eventJson, string field) =>
        ContentString(System.Text.Encoding.UTF8.GetBytes(eventJson), field);

    /// <summary>A string field of an event's content, read from its UTF-8 JSON (<see cref="StoredEvent.Utf8Json"/>)
    /// with a reader that allocates nothing but the answer: loading a room's state reads every member event's
    /// membership (90,000 for a full-state sync of 300 rooms of 300), where a document was parsed for each. As
    /// <see cref="JsonElement.TryGetProperty(string, out JsonElement)"/> would, a key given twice counts as its last.</summary>
    public static string? ContentString(ReadOnlyMemory<byte> eventJson, string field)
    {
        var reader = new Utf8JsonReader(eventJson.Span);
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject) return null;
        string? found = null;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var isContent = reader.ValueTextEquals("content"u8);
            reader.Read();
            if (!isContent)
            {
                reader.Skip();
                continue;
            }
            found = null;
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                reader.Skip();
                continue;
            }
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isField = reader.ValueTextEquals(field);
                reader.Read();
                if (isField && reader.TokenType == JsonTokenType.String) found = reader.GetString();
                else
                {
                    if (isField) found = null;
                    reader.Skip();
                }
            }
        }
        return found;
    }

    /// <summary>The event's content as JSON text ("{}" when it has none).</summary>
    public static string ContentJson(string eventJson)
    {
        using var doc = JsonDocument.Parse(eventJson);
        return doc.RootElement.TryGetProperty("content", out var content) ? content.GetRawText() : "{}";
    }
}

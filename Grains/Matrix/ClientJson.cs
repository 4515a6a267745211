using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Unicode;
using Homeserver.Errors;

namespace Homeserver.Matrix;

/// <summary>
/// The one parser for JSON that a client sends (request bodies, and JSON passed in query parameters such as a
/// <c>/sync</c> filter). What it accepts every later step can store, index, cast and serve: the text is valid UTF-8
/// (else 400 <c>M_NOT_JSON</c>) and valid JSON (else <c>M_NOT_JSON</c>); no string or key holds <c>\u0000</c> (PostgreSQL
/// text and jsonb cannot hold it; Synapse refuses it too) or a lone surrogate escape (no UTF-8 form, so it cannot be
/// stored, signed or served); nesting is at most <see cref="MaxDepth"/> deep; no object repeats a key. Those are
/// 400 <c>M_BAD_JSON</c>.
/// </summary>
public static class ClientJson
{
    /// <summary>
    /// Deepest nesting accepted (the outermost object is level 1). Matrix content is shallow; the bound keeps every
    /// response that wraps client content (a /sync response adds about eight levels) within System.Text.Json's default
    /// depth of 64 and keeps recursive code (canonical JSON, redaction, push rule matching) bounded.
    /// </summary>
    public const int MaxDepth = 32;

    /// <summary>A required string field of a client's object: 400 <c>M_MISSING_PARAM</c> when absent or null,
    /// <c>M_BAD_JSON</c> when not a string.</summary>
    public static string RequireString(JsonObject body, string name)
    {
        if (!body.TryGetPropertyValue(name, out var v) || v is null)
            throw new MatrixException(ErrorCodes.MissingParam, $"Missing '{name}'", 400);
        return v is JsonValue jv && jv.TryGetValue<string>(out var s)
            ? s
            : throw new MatrixException(ErrorCodes.BadJson, $"'{name}' must be a string", 400);
    }

    /// <summary>An optional string field: null when absent or null, 400 <c>M_BAD_JSON</c> when not a string.</summary>
    public static string? OptionalString(JsonObject body, string name)
    {
        if (!body.TryGetPropertyValue(name, out var v) || v is null) return null;
        return v is JsonValue jv && jv.TryGetValue<string>(out var s)
            ? s
            : throw new MatrixException(ErrorCodes.BadJson, $"'{name}' must be a string", 400);
    }

    /// <summary>An optional boolean field: <paramref name="fallback"/> when absent or null, 400 <c>M_BAD_JSON</c> when
    /// not a JSON boolean.</summary>
    public static bool OptionalBool(JsonObject body, string name, bool fallback = false)
    {
        if (!body.TryGetPropertyValue(name, out var v) || v is null) return fallback;
        return v is JsonValue jv && jv.TryGetValue<bool>(out var b)
            ? b
            : throw new MatrixException(ErrorCodes.BadJson, $"'{name}' must be a boolean", 400);
    }

    /// <summary>Parses a client's JSON object (see the class summary for what is refused and how).</summary>
    public static JsonObject ParseObject(ReadOnlyMemory<byte> utf8) =>
        Parse(utf8) as JsonObject ?? throw MatrixException.BadJson("Content must be a JSON object");

    /// <summary>Parses any client JSON value (see the class summary).</summary>
    public static JsonNode Parse(ReadOnlyMemory<byte> utf8)
    {
        Check(utf8.Span);
        return CanonicalJson.Parse(utf8);
    }

    /// <inheritdoc cref="Parse(ReadOnlyMemory{byte})"/>
    public static JsonNode Parse(string json)
    {
        byte[] utf8;
        try
        {
            utf8 = StrictUtf8.GetBytes(json);
        }
        catch (System.Text.EncoderFallbackException)
        {
            throw new MatrixException(ErrorCodes.NotJson, "Content is not valid Unicode");
        }
        return Parse(utf8);
    }

    // Throws on a lone surrogate instead of writing U+FFFD in its place.
    private static readonly System.Text.UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Throws unless <paramref name="utf8"/> is JSON this server accepts from a client.</summary>
    public static void Check(ReadOnlySpan<byte> utf8)
    {
        if (!Utf8.IsValid(utf8)) throw new MatrixException(ErrorCodes.NotJson, "Content is not valid UTF-8");
        // The reader's own limit sits one above ours so that too deep input is told apart from broken input.
        var reader = new Utf8JsonReader(utf8, new JsonReaderOptions { MaxDepth = MaxDepth + 1 });
        try
        {
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.StartObject or JsonTokenType.StartArray when reader.CurrentDepth >= MaxDepth:
                        throw MatrixException.BadJson($"JSON is nested more than {MaxDepth} levels deep");
                    case JsonTokenType.String or JsonTokenType.PropertyName when reader.ValueIsEscaped:
                        CheckEscapes(reader.ValueSpan);
                        break;
                }
            }
        }
        catch (JsonException)
        {
            throw new MatrixException(ErrorCodes.NotJson, "Content is not valid JSON");
        }
    }

    /// <summary>
    /// Throws 400 <c>M_BAD_JSON</c>/<c>M_INVALID_PARAM</c> when a string from outside JSON (a path segment, a query
    /// parameter) holds what storage refuses: <c>\u0000</c> or a lone surrogate.
    /// </summary>
    public static void RequireStorable(string value, string what)
    {
        if (!IsStorable(value)) throw MatrixException.InvalidParam($"{what} contains a NUL character or invalid Unicode");
    }

    /// <summary>Whether PostgreSQL can store <paramref name="value"/> as text: no NUL, no lone surrogate.</summary>
    public static bool IsStorable(string value)
    {
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (c == '\0') return false;
            if (char.IsHighSurrogate(c))
            {
                if (i + 1 >= value.Length || !char.IsLowSurrogate(value[i + 1])) return false;
                i++;
            }
            else if (char.IsLowSurrogate(c)) return false;
        }
        return true;
    }

    // The raw (still escaped) bytes of a string: every \uXXXX is decoded and checked; raw bytes are valid UTF-8
    // already (checked above), and UTF-8 cannot encode a surrogate or an unescaped control character the reader allows.
    private static void CheckEscapes(ReadOnlySpan<byte> raw)
    {
        var pendingHigh = false;
        for (var i = 0; i < raw.Length; i++)
        {
            if (raw[i] != (byte)'\\')
            {
                if (pendingHigh) throw LoneSurrogate();
                continue;
            }
            var kind = raw[++i];
            if (kind != (byte)'u')
            {
                if (pendingHigh) throw LoneSurrogate();
                continue;
            }
            var unit = Hex(raw.Slice(i + 1, 4));
            i += 4;
            if (unit == 0) throw MatrixException.BadJson("JSON strings must not contain \\u0000");
            if (unit is >= 0xD800 and <= 0xDBFF)
            {
                if (pendingHigh) throw LoneSurrogate();
                pendingHigh = true;
            }
            else if (unit is >= 0xDC00 and <= 0xDFFF)
            {
                if (!pendingHigh) throw LoneSurrogate();
                pendingHigh = false;
            }
            else if (pendingHigh) throw LoneSurrogate();
        }
        if (pendingHigh) throw LoneSurrogate();
    }

    private static MatrixException LoneSurrogate() => MatrixException.BadJson("JSON strings must not contain lone surrogates");

    private static int Hex(ReadOnlySpan<byte> digits)
    {
        var value = 0;
        foreach (var d in digits)
            value = value * 16 + d switch
            {
                >= (byte)'0' and <= (byte)'9' => d - '0',
                >= (byte)'a' and <= (byte)'f' => d - 'a' + 10,
                >= (byte)'A' and <= (byte)'F' => d - 'A' + 10,
                _ => throw new MatrixException(ErrorCodes.NotJson, "Content is not valid JSON"),
            };
        return value;
    }
}

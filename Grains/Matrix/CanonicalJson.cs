using System.Buffers;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Homeserver.Errors;

namespace Homeserver.Matrix;

/// <summary>
/// Matrix canonical JSON (spec appendix "Canonical JSON"): the byte form that is hashed and signed. Any two servers must
/// produce the same bytes for the same value, so every choice here (key order, escaping, numbers) follows the spec
/// grammar exactly rather than System.Text.Json's defaults (which escape non-ASCII and HTML characters).
/// </summary>
public static class CanonicalJson
{
    /// <summary>Largest integer allowed in canonical JSON: 2^53 - 1, the largest an IEEE double holds exactly.</summary>
    public const long MaxSafeInteger = 9007199254740991L;
    public const long MinSafeInteger = -9007199254740991L;

    /// <summary>Nesting guard: canonical JSON is recursive and the input may come from a client.</summary>
    private const int MaxDepth = 128;

    private static readonly JsonDocumentOptions StrictDocumentOptions = new()
    {
        AllowDuplicateProperties = false,
        MaxDepth = MaxDepth,
    };

    public static string Encode(JsonNode? node)
    {
        var sb = RentBuilder();
        try
        {
            Write(sb, node, 0);
            return sb.ToString();
        }
        finally { ReturnBuilder(sb); }
    }

    public static byte[] EncodeToUtf8(JsonNode? node) => Encoding.UTF8.GetBytes(Encode(node));

    /// <summary>
    /// Canonical JSON of <paramref name="obj"/> as if the given top-level keys were absent: what signing and hashing
    /// need (they drop <c>signatures</c>, <c>unsigned</c>, <c>hashes</c>) without copying the event.
    /// </summary>
    public static byte[] EncodeToUtf8Without(JsonObject obj, params string[] excludedKeys)
    {
        var sb = RentBuilder();
        try
        {
            WriteObject(sb, obj, 0, excludedKeys);
            return Encoding.UTF8.GetBytes(sb.ToString());
        }
        finally { ReturnBuilder(sb); }
    }

    /// <summary>SHA-256 of <see cref="EncodeToUtf8(JsonNode?)"/>, without making the string or the byte array: an
    /// event built here is hashed twice (content hash, reference hash) before it is encoded for storage.</summary>
    public static byte[] Sha256(JsonNode? node)
    {
        var sb = RentBuilder();
        try
        {
            Write(sb, node, 0);
            return Sha256(sb);
        }
        finally { ReturnBuilder(sb); }
    }

    /// <summary>SHA-256 of <see cref="EncodeToUtf8Without"/>.</summary>
    public static byte[] Sha256Without(JsonObject obj, params string[] excludedKeys)
    {
        var sb = RentBuilder();
        try
        {
            WriteObject(sb, obj, 0, excludedKeys);
            return Sha256(sb);
        }
        finally { ReturnBuilder(sb); }
    }

    private static byte[] Sha256(StringBuilder sb)
    {
        var chars = ArrayPool<char>.Shared.Rent(sb.Length);
        var bytes = ArrayPool<byte>.Shared.Rent(Encoding.UTF8.GetMaxByteCount(sb.Length));
        try
        {
            sb.CopyTo(0, chars, 0, sb.Length);
            // Lone surrogates were refused while writing, so this encoding is exact (no U+FFFD replacement).
            var n = Encoding.UTF8.GetBytes(chars, 0, sb.Length, bytes, 0);
            return SHA256.HashData(bytes.AsSpan(0, n));
        }
        finally
        {
            ArrayPool<char>.Shared.Return(chars);
            ArrayPool<byte>.Shared.Return(bytes);
        }
    }

    // One builder per thread, reused: encoding is synchronous and an event's three encodings otherwise grow a new
    // builder chunk by chunk each time. Taken out while in use, so a nested encoding gets a fresh one.
    [ThreadStatic] private static StringBuilder? _builder;
    private const int MaxKeptBuilderChars = 64 * 1024;

    private static StringBuilder RentBuilder()
    {
        var sb = _builder ?? new StringBuilder(1024);
        _builder = null;
        return sb;
    }

    private static void ReturnBuilder(StringBuilder sb)
    {
        if (sb.Capacity > MaxKeptBuilderChars) return;
        sb.Clear();
        _builder = sb;
    }

    public static string Encode(JsonElement element)
    {
        var sb = RentBuilder();
        try
        {
            Write(sb, element, 0);
            return sb.ToString();
        }
        finally { ReturnBuilder(sb); }
    }

    public static byte[] EncodeToUtf8(JsonElement element) => Encoding.UTF8.GetBytes(Encode(element));

    /// <summary>
    /// Parses JSON text the way a Matrix server must accept it: valid JSON (else <c>M_NOT_JSON</c>), no duplicate keys
    /// (their meaning is ambiguous, so a signature over them would be too), and only numbers canonical JSON can carry
    /// (else <c>M_BAD_JSON</c>).
    /// </summary>
    public static JsonNode ParseStrict(string json)
    {
        var node = Parse(json);
        Validate(node);
        return node;
    }

    /// <summary>
    /// Parses a request body or parameter: valid JSON (else <c>M_NOT_JSON</c>) without duplicate keys (else
    /// <c>M_BAD_JSON</c>; .NET would otherwise throw on first access), any numbers. Event content goes through
    /// <see cref="ParseStrict"/> as well.
    /// </summary>
    public static JsonNode Parse(string json) =>
        ParseCore(() => JsonNode.Parse(json, documentOptions: StrictDocumentOptions), () => IsWellFormedJson(() => JsonDocument.Parse(json, LenientDocumentOptions)));

    /// <inheritdoc cref="Parse(string)"/>
    public static JsonNode Parse(ReadOnlyMemory<byte> utf8) =>
        ParseCore(() => JsonNode.Parse(utf8.Span, documentOptions: StrictDocumentOptions), () => IsWellFormedJson(() => JsonDocument.Parse(utf8, LenientDocumentOptions)));

    private static JsonNode ParseCore(Func<JsonNode?> parse, Func<bool> wellFormed)
    {
        JsonNode? node;
        try
        {
            node = parse();
        }
        catch (JsonException)
        {
            throw wellFormed()
                ? MatrixException.BadJson("Duplicate key in JSON object")
                : new MatrixException(ErrorCodes.NotJson, "Content not JSON.");
        }
        return node ?? throw MatrixException.BadJson("JSON must not be null");
    }

    /// <summary>Parses like <see cref="ParseStrict"/> and additionally requires a JSON object.</summary>
    public static JsonObject ParseObject(string json) =>
        ParseStrict(json) as JsonObject ?? throw new MatrixException(ErrorCodes.NotJson, "Content must be a JSON object.");

    /// <summary>
    /// Throws <c>M_BAD_JSON</c> if the value cannot be canonically encoded: a number that is not an integer or lies
    /// outside [-(2^53)+1, (2^53)-1], a string with a lone surrogate, or nesting deeper than 128.
    /// </summary>
    public static void Validate(JsonNode? node) => Validate(node, 0, "");

    /// <summary>Non-throwing <see cref="Validate(JsonNode?)"/>.</summary>
    public static bool IsValid(JsonNode? node)
    {
        try
        {
            Validate(node);
            return true;
        }
        catch (MatrixException)
        {
            return false;
        }
    }

    /// <summary>
    /// Orders strings by Unicode code point. Ordinal UTF-16 comparison differs from it only when a surrogate (an astral
    /// character) meets a BMP character in U+E000..U+FFFF: the surrogate sorts first in UTF-16 but last by code point.
    /// </summary>
    public static readonly IComparer<string> CodePointComparer = Comparer<string>.Create(CompareByCodePoint);

    public static int CompareByCodePoint(string? a, string? b)
    {
        if (ReferenceEquals(a, b)) return 0;
        if (a is null) return -1;
        if (b is null) return 1;
        var n = Math.Min(a.Length, b.Length);
        for (var i = 0; i < n; i++)
        {
            var x = a[i];
            var y = b[i];
            if (x == y) continue;
            if (x >= 0xD800 && y >= 0xD800) return Fixup(x) - Fixup(y);
            return x - y;
        }
        return a.Length - b.Length;
    }

    // Moves surrogates above U+E000..U+FFFF so that code-unit order matches code-point order (the UTF-8 byte order).
    private static int Fixup(char c) => c >= 0xE000 ? c - 0x800 : c + 0x2000;

    private static readonly JsonDocumentOptions LenientDocumentOptions = new() { MaxDepth = MaxDepth };

    // Tells a duplicate key (well-formed JSON that the strict parse refused) from broken JSON without relying on the
    // exception's message text. Only runs on the error path.
    private static bool IsWellFormedJson(Func<JsonDocument> parse)
    {
        try
        {
            using var _ = parse();
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static void Validate(JsonNode? node, int depth, string path)
    {
        if (depth > MaxDepth) throw MatrixException.BadJson("JSON nested too deeply");
        switch (node)
        {
            case null:
                return;
            case JsonObject obj:
                foreach (var (key, value) in obj)
                {
                    CheckString(key, path);
                    Validate(value, depth + 1, path.Length == 0 ? key : path + "." + key);
                }
                return;
            case JsonArray arr:
                for (var i = 0; i < arr.Count; i++) Validate(arr[i], depth + 1, $"{path}[{i}]");
                return;
            default:
                var v = node.AsValue();
                switch (v.GetValueKind())
                {
                    case JsonValueKind.Number:
                        ReadInteger(v, path);
                        break;
                    case JsonValueKind.String:
                        CheckString(ReadString(v), path);
                        break;
                }
                return;
        }
    }

    private static void Write(StringBuilder sb, JsonNode? node, int depth)
    {
        if (depth > MaxDepth) throw MatrixException.BadJson("JSON nested too deeply");
        switch (node)
        {
            case null:
                sb.Append("null");
                return;
            case JsonObject obj:
                WriteObject(sb, obj, depth, []);
                return;
            case JsonArray arr:
                sb.Append('[');
                for (var i = 0; i < arr.Count; i++)
                {
                    if (i > 0) sb.Append(',');
                    Write(sb, arr[i], depth + 1);
                }
                sb.Append(']');
                return;
            default:
            {
                var v = node.AsValue();
                switch (v.GetValueKind())
                {
                    case JsonValueKind.Null: sb.Append("null"); return;
                    case JsonValueKind.True: sb.Append("true"); return;
                    case JsonValueKind.False: sb.Append("false"); return;
                    case JsonValueKind.String: WriteString(sb, ReadString(v)); return;
                    case JsonValueKind.Number:
                        sb.Append(ReadInteger(v, "").ToString(CultureInfo.InvariantCulture));
                        return;
                    default:
                        throw MatrixException.BadJson("Unsupported JSON value");
                }
            }
        }
    }

    private static void WriteObject(StringBuilder sb, JsonObject obj, int depth, string[] excludedKeys)
    {
        // JsonObject rejects duplicate keys itself, so sorting its keys is all that is needed.
        var keys = new List<string>(obj.Count);
        foreach (var kv in obj)
            if (excludedKeys.Length == 0 || Array.IndexOf(excludedKeys, kv.Key) < 0)
                keys.Add(kv.Key);
        keys.Sort(CodePointComparer);
        sb.Append('{');
        for (var i = 0; i < keys.Count; i++)
        {
            if (i > 0) sb.Append(',');
            WriteString(sb, keys[i]);
            sb.Append(':');
            Write(sb, obj[keys[i]], depth + 1);
        }
        sb.Append('}');
    }

    private static void Write(StringBuilder sb, JsonElement element, int depth)
    {
        if (depth > MaxDepth) throw MatrixException.BadJson("JSON nested too deeply");
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
            {
                var props = new List<(string Name, JsonElement Value)>();
                foreach (var p in element.EnumerateObject()) props.Add((p.Name, p.Value));
                props.Sort((x, y) => CompareByCodePoint(x.Name, y.Name));
                sb.Append('{');
                for (var i = 0; i < props.Count; i++)
                {
                    // A JsonElement can carry duplicate keys; there is no single canonical form for those.
                    if (i > 0 && props[i].Name == props[i - 1].Name)
                        throw MatrixException.BadJson($"Duplicate key '{props[i].Name}' in JSON object");
                    if (i > 0) sb.Append(',');
                    WriteString(sb, props[i].Name);
                    sb.Append(':');
                    Write(sb, props[i].Value, depth + 1);
                }
                sb.Append('}');
                return;
            }
            case JsonValueKind.Array:
            {
                sb.Append('[');
                var first = true;
                foreach (var item in element.EnumerateArray())
                {
                    if (!first) sb.Append(',');
                    first = false;
                    Write(sb, item, depth + 1);
                }
                sb.Append(']');
                return;
            }
            case JsonValueKind.String:
                WriteString(sb, element.GetString()!);
                return;
            case JsonValueKind.Number:
                sb.Append(ParseInteger(element.GetRawText(), "").ToString(CultureInfo.InvariantCulture));
                return;
            case JsonValueKind.True: sb.Append("true"); return;
            case JsonValueKind.False: sb.Append("false"); return;
            case JsonValueKind.Null: sb.Append("null"); return;
            default:
                throw MatrixException.BadJson("Unsupported JSON value");
        }
    }

    /// <summary>
    /// Escapes only what the grammar requires: quote, backslash and U+0000..U+001F (short forms where they exist,
    /// lowercase <c>\u00xx</c> otherwise). Everything else, including non-ASCII, is written as-is and becomes UTF-8.
    /// </summary>
    private static void WriteString(StringBuilder sb, string s)
    {
        CheckString(s, "");
        sb.Append('"');
        // Runs that need no escaping (nearly every string) are appended whole.
        var start = 0;
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            if (c >= 0x20 && c != '"' && c != '\\') continue;
            if (i > start) sb.Append(s, start, i - start);
            start = i + 1;
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default: sb.Append("\\u00").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture)); break;
            }
        }
        if (s.Length > start) sb.Append(s, start, s.Length - start);
        sb.Append('"');
    }

    // A lone surrogate has no UTF-8 form; encoding it would silently turn into U+FFFD and break signatures.
    private static void CheckString(string s, string path)
    {
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) { i++; continue; }
            if (char.IsSurrogate(c))
                throw MatrixException.BadJson(path.Length == 0 ? "Invalid UTF-16 in JSON string" : $"Invalid UTF-16 in JSON string at '{Quote.Short(path)}'");
        }
    }

    private static string ReadString(JsonValue v)
    {
        if (v.TryGetValue<string>(out var s)) return s;
        // Values created from CLR types such as Guid or DateTime report kind String but are not stored as string.
        return JsonSerializer.Deserialize<string>(v.ToJsonString())!;
    }

    private static long ReadInteger(JsonValue v, string path)
    {
        if (v.TryGetValue<long>(out var l)) return CheckRange(l, path);
        if (v.TryGetValue<int>(out var i)) return i;
        string text;
        try
        {
            text = v.ToJsonString();
        }
        catch (ArgumentException)
        {
            // NaN and infinities cannot even be written as JSON.
            throw BadNumber(path);
        }
        return ParseInteger(text, path);
    }

    /// <summary>
    /// Accepts any JSON number whose value is an integer in range, whatever its spelling (<c>1e10</c>, <c>-0</c>,
    /// <c>5.0</c>), and rejects the rest: the spec's own example maps <c>1e10</c> to <c>10000000000</c>.
    /// </summary>
    private static long ParseInteger(string text, string path)
    {
        if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l))
            return CheckRange(l, path);
        if (decimal.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d))
        {
            if (decimal.Truncate(d) != d || d > MaxSafeInteger || d < MinSafeInteger) throw BadNumber(path);
            return (long)d;
        }
        throw BadNumber(path);
    }

    private static long CheckRange(long l, string path) =>
        l is > MaxSafeInteger or < MinSafeInteger ? throw BadNumber(path) : l;

    private static MatrixException BadNumber(string path) => MatrixException.BadJson(path.Length == 0
        ? "Numbers must be integers in the range [-(2**53)+1, (2**53)-1]"
        : $"'{path}' must be an integer in the range [-(2**53)+1, (2**53)-1]");
}

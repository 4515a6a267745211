using System.Text.Json;
using System.Text.Json.Nodes;
using Homeserver.Errors;
using Homeserver.Matrix;

namespace Homeserver.Api.Http;

/// <summary>Request bodies: unparsable is 400 <c>M_NOT_JSON</c>, a non-object 400 <c>M_BAD_JSON</c>.</summary>
public static class JsonBody
{
    public const int MaxBodyBytes = 1 << 20;

    public static async Task<JsonObject> ReadObjectAsync(HttpRequest request, bool allowEmpty = false)
    {
        using var buffer = new MemoryStream();
        var limit = MaxBodyBytes + 1;
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, request.HttpContext.RequestAborted)) > 0)
        {
            buffer.Write(chunk, 0, read);
            if (buffer.Length >= limit) throw new MatrixException(ErrorCodes.TooLarge, "Request body too large", 413);
        }
        if (buffer.Length == 0)
        {
            if (allowEmpty) return [];
            throw new MatrixException(ErrorCodes.NotJson, "Request body is empty; expected a JSON object", 400);
        }
        var node = CanonicalJson.Parse(new ReadOnlyMemory<byte>(buffer.GetBuffer(), 0, (int)buffer.Length));
        return node as JsonObject ?? throw new MatrixException(ErrorCodes.BadJson, "Request body must be a JSON object", 400);
    }

    public static string RequireString(JsonObject body, string name)
    {
        if (!body.TryGetPropertyValue(name, out var v) || v is null)
            throw new MatrixException(ErrorCodes.MissingParam, $"Missing '{name}'", 400);
        return v is JsonValue jv && jv.TryGetValue<string>(out var s)
            ? s
            : throw new MatrixException(ErrorCodes.BadJson, $"'{name}' must be a string", 400);
    }

    public static string? OptionalString(JsonObject body, string name)
    {
        if (!body.TryGetPropertyValue(name, out var v) || v is null) return null;
        return v is JsonValue jv && jv.TryGetValue<string>(out var s)
            ? s
            : throw new MatrixException(ErrorCodes.BadJson, $"'{name}' must be a string", 400);
    }

    public static bool OptionalBool(JsonObject body, string name, bool fallback = false)
    {
        if (!body.TryGetPropertyValue(name, out var v) || v is null) return fallback;
        return v is JsonValue jv && jv.TryGetValue<bool>(out var b)
            ? b
            : throw new MatrixException(ErrorCodes.BadJson, $"'{name}' must be a boolean", 400);
    }
}

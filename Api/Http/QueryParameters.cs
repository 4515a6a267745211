using System.Globalization;
using Homeserver.Errors;

namespace Homeserver.Api.Http;

/// <summary>The query parameters several endpoints share, read the same way everywhere (a malformed one is 400
/// <c>M_INVALID_PARAM</c>).</summary>
public static class QueryParameters
{
    /// <summary>The parameter's value, or null when absent or empty.</summary>
    public static string? Optional(HttpContext context, string name) =>
        context.Request.Query[name].ToString() is { Length: > 0 } value ? value : null;

    public static int NonNegativeInt(HttpContext context, string name, int fallback)
    {
        var text = Optional(context, name);
        if (text is null) return fallback;
        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value)
            ? value
            : throw MatrixException.InvalidParam($"'{name}' must be a non-negative integer");
    }

    /// <summary>A long-poll's <c>timeout</c> in milliseconds (0 when absent), capped at <paramref name="max"/>.</summary>
    public static TimeSpan Timeout(HttpContext context, TimeSpan max)
    {
        var text = Optional(context, "timeout");
        if (text is null) return TimeSpan.Zero;
        if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var ms))
            throw MatrixException.InvalidParam("'timeout' must be a non-negative integer");
        return TimeSpan.FromMilliseconds(Math.Min(ms, (long)max.TotalMilliseconds));
    }

    public static bool Boolean(HttpContext context, string name) => Optional(context, name) switch
    {
        null or "false" => false,
        "true" => true,
        _ => throw MatrixException.InvalidParam($"'{name}' must be true or false"),
    };
}

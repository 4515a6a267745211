using System.Text.Json.Nodes;
using Homeserver.Errors;
using Homeserver.Matrix;

namespace Homeserver.Api.Http;

/// <summary>
/// A handler's view of its request body, as <see cref="ClientRequestBoundary"/> read and checked it: a JSON object, or
/// 400 <c>M_NOT_JSON</c> when there was none and the endpoint needs one. Field readers answer 400 for wrong types.
/// </summary>
public static class JsonBody
{
    /// <summary>The body's JSON object (an empty one when there is no body and <paramref name="allowEmpty"/>).</summary>
    public static JsonObject Object(HttpRequest request, bool allowEmpty = false)
    {
        var body = Accepted(request);
        if (body.Object is { } obj) return obj;
        if (allowEmpty) return [];
        throw new MatrixException(ErrorCodes.NotJson, "Request body is empty; expected a JSON object", 400);
    }

    /// <summary>The body's text exactly as sent (valid, checked JSON), or null when there was none.</summary>
    public static string? Text(HttpRequest request)
    {
        var body = Accepted(request);
        return body.Object is null ? null : System.Text.Encoding.UTF8.GetString(body.Utf8.Span);
    }

    private static ClientJsonBody Accepted(HttpRequest request) =>
        request.HttpContext.Features.Get<ClientJsonBody>()
        ?? throw new InvalidOperationException(
            $"{request.Path}: the endpoint's ClientBodyPolicy says the boundary does not read its body, yet it asks for it");

    // The field readers are the grains' too (a registration reads the parameters its session remembered).
    public static string RequireString(JsonObject body, string name) => ClientJson.RequireString(body, name);

    public static string? OptionalString(JsonObject body, string name) => ClientJson.OptionalString(body, name);

    public static bool OptionalBool(JsonObject body, string name, bool fallback = false) => ClientJson.OptionalBool(body, name, fallback);
}

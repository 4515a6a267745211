namespace Homeserver.Api.Http;

/// <summary>
/// Older paths clients still call, served by the current endpoints (runs before routing). Every endpoint that existed
/// under <c>/_matrix/client/r0/</c> answers there as under <c>v3</c>, as Synapse does (matrix-nio, and many bots and
/// bridges on it, calls nothing else), and the media repository's <c>/_matrix/media/r0/</c> as its <c>v3</c>; so do the <c>unstable</c> paths of the cross-signing uploads. A path that
/// never existed under <c>v3</c> gets the same 404 <c>M_UNRECOGNIZED</c> either way.
/// </summary>
public sealed class LegacyClientPaths(RequestDelegate next)
{
    private const string R0 = "/_matrix/client/r0/";
    private const string V3 = "/_matrix/client/v3/";
    private const string Unstable = "/_matrix/client/unstable/";
    private const string MediaR0 = "/_matrix/media/r0/";
    private const string MediaV3 = "/_matrix/media/v3/";
    private static readonly string[] UnstableAliases = ["keys/device_signing/upload", "keys/signatures/upload"];

    public Task InvokeAsync(HttpContext context)
    {
        var path = context.Request.Path.Value;
        if (path is not null)
        {
            if (path.StartsWith(R0, StringComparison.Ordinal))
                context.Request.Path = new PathString(V3 + path[R0.Length..]);
            else if (path.StartsWith(MediaR0, StringComparison.Ordinal))
                context.Request.Path = new PathString(MediaV3 + path[MediaR0.Length..]);
            else if (path.StartsWith(Unstable, StringComparison.Ordinal) && UnstableAliases.Contains(path[Unstable.Length..], StringComparer.Ordinal))
                context.Request.Path = new PathString(V3 + path[Unstable.Length..]);
        }
        return next(context);
    }
}

/// <summary>
/// JSON answers carry exactly <c>Content-Type: application/json</c>: ASP.NET adds <c>; charset=utf-8</c>, which the
/// spec does not use and which strict clients and SyTest compare against. (JSON is UTF-8 by definition, RFC 8259.)
/// </summary>
public sealed class JsonContentType(RequestDelegate next)
{
    private const string Json = "application/json";

    public Task InvokeAsync(HttpContext context)
    {
        context.Response.OnStarting(static state =>
        {
            var response = (HttpResponse)state;
            if (response.ContentType is { } type && type.Length > Json.Length && type.StartsWith(Json + ";", StringComparison.OrdinalIgnoreCase))
                response.ContentType = Json;
            return Task.CompletedTask;
        }, context.Response);
        return next(context);
    }
}

using Homeserver.Api.Errors;
using Homeserver.Api.Http;
using Homeserver.Errors;
using Microsoft.AspNetCore.Routing.Patterns;
using Microsoft.AspNetCore.Routing.Template;

namespace Homeserver.Api.Endpoints;

/// <summary>
/// Unknown routes answer 404 <c>M_UNRECOGNIZED</c>; a known route with the wrong method answers 405
/// <c>M_UNRECOGNIZED</c> (spec: "Unrecognized request"). The fallback matches every path and method, so it decides
/// between the two by matching the path against the other routes' templates.
/// </summary>
public static class FallbackEndpoints
{
    public static IEndpointRouteBuilder MapFallbackEndpoints(this IEndpointRouteBuilder app)
    {
        // "{*path}": the default fallback pattern skips paths whose last segment looks like a file name (has a dot),
        // which then got a bare 404. The body of an unknown request is not read.
        app.MapFallback("{*path}", (HttpContext context, EndpointDataSource endpoints) =>
        {
            var status = PathMatchesAnotherMethod(context, endpoints) ? 405 : 404;
            return MatrixErrorMiddleware.WriteAsync(context, status, ErrorCodes.Unrecognized,
                status == 405 ? "Method not allowed for this endpoint" : "Unrecognized request");
        }).WithMetadata(ClientBodyPolicy.Ignored);
        return app;
    }

    // One list per app (test silos share a process, so not one static list).
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<EndpointDataSource, IReadOnlyList<TemplateMatcher>> Matchers = new();

    private static bool PathMatchesAnotherMethod(HttpContext context, EndpointDataSource endpoints)
    {
        var matchers = Matchers.GetValue(endpoints, source => source.Endpoints
            .OfType<RouteEndpoint>()
            .Where(e => e.Metadata.GetMetadata<HttpMethodMetadata>() is not null && e.RoutePattern.RawText is { } raw && !raw.Contains("{*path"))
            .Select(e => new TemplateMatcher(TemplateParser.Parse(Strip(e.RoutePattern)), new RouteValueDictionary()))
            .ToList());
        var values = new RouteValueDictionary();
        return matchers.Any(m => m.TryMatch(context.Request.Path, values));
    }

    // TemplateParser does not know inline constraints' regexes with braces well; the shape of the path is enough.
    private static string Strip(RoutePattern pattern) =>
        string.Join('/', pattern.PathSegments.Select(s => string.Concat(s.Parts.Select(p => p switch
        {
            RoutePatternLiteralPart l => l.Content,
            RoutePatternParameterPart { IsCatchAll: true } c => $"{{*{c.Name}}}",
            RoutePatternParameterPart c => $"{{{c.Name}}}",
            RoutePatternSeparatorPart sep => sep.Content,
            _ => "",
        }))));
}

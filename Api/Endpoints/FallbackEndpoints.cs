using Homeserver.Api.Errors;
using Homeserver.Errors;

namespace Homeserver.Api.Endpoints;

/// <summary>Unknown routes answer 404 <c>M_UNRECOGNIZED</c>; known routes with the wrong method answer 405.</summary>
public static class FallbackEndpoints
{
    public static IEndpointRouteBuilder MapFallbackEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapFallback((HttpContext context) =>
        {
            var status = context.Items.ContainsKey(MethodNotAllowedMarker) ? 405 : 404;
            return MatrixErrorMiddleware.WriteAsync(context, status, ErrorCodes.Unrecognized, "Unrecognized request");
        });
        return app;
    }

    public const string MethodNotAllowedMarker = "homeserver.method_not_allowed";
}

using System.Text;
using Homeserver.Accounts;
using Homeserver.Api.Errors;
using Homeserver.Api.Http;
using Homeserver.Errors;
using Microsoft.Extensions.Options;
using Orleans.Dashboard;

namespace Homeserver.Api.Endpoints;

/// <summary>
/// The Orleans dashboard under <c>/_homeserver/dashboard/</c>, for server admins only, when
/// <c>Homeserver:Dashboard:Enabled</c> is set (otherwise the path is unknown: 404).
/// <para>
/// A browser does not send a bearer header, so the page also takes the admin's access token as the password of HTTP
/// Basic authentication (any user name): an unauthenticated request is answered 401 with
/// <c>WWW-Authenticate: Basic</c>, the browser asks once and then sends the credentials with every request of the
/// page and its API calls. Chosen over a cookie because it needs no session state, no call to issue it and no CSRF
/// defence, and the dashboard stops working the moment the token is logged out; like the bearer header, it must
/// travel over TLS. A bearer header is accepted too (tools, tests); the deprecated <c>access_token</c> query parameter
/// is not, as it would end up in browser history.
/// </para>
/// </summary>
public static class DashboardEndpoints
{
    public const string Prefix = "/_homeserver/dashboard";
    private const string Challenge = "Basic realm=\"Homeserver dashboard (user name: anything, password: an admin's access token)\", charset=\"UTF-8\"";

    public static IEndpointRouteBuilder MapDashboardEndpoints(this IEndpointRouteBuilder app)
    {
        if (!app.ServiceProvider.GetRequiredService<IOptions<HomeserverOptions>>().Value.Dashboard.Enabled) return app;
        app.MapOrleansDashboard(Prefix).AddEndpointFilter(RequireAdminAsync);
        return app;
    }

    private static async ValueTask<object?> RequireAdminAsync(EndpointFilterInvocationContext invocation, EndpointFilterDelegate next)
    {
        var context = invocation.HttpContext;
        var token = Token(context.Request);
        if (token is null) return Unauthorized(context, ErrorCodes.MissingToken, "Missing access token");
        var requester = await context.RequestServices.GetRequiredService<IAccessTokenAuthenticator>().AuthenticateAsync(token);
        if (requester is null) return Unauthorized(context, ErrorCodes.UnknownToken, "Unrecognised access token");
        if (!await RequestAuth.IsAdminAsync(context, requester.UserId)) throw MatrixException.Forbidden("You are not a server admin");
        return await next(invocation);
    }

    /// <summary>The bearer token, or the password of Basic credentials (the user name is not checked: the token says who).</summary>
    private static string? Token(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        if (header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return header["Bearer ".Length..].Trim();
        if (!header.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase)) return null;
        var encoded = header["Basic ".Length..].Trim();
        var bytes = new byte[encoded.Length];
        if (!Convert.TryFromBase64String(encoded, bytes, out var length)) return null;
        var credentials = Encoding.UTF8.GetString(bytes, 0, length);
        // After the last colon: the user name a browser user types is likely their user id, which has colons, and
        // access tokens have none (RFC 7617 would split at the first).
        var colon = credentials.LastIndexOf(':');
        return colon < 0 || colon == credentials.Length - 1 ? null : credentials[(colon + 1)..];
    }

    // Written here rather than thrown: the error middleware clears headers, and the challenge must reach the browser.
    private static IResult Unauthorized(HttpContext context, string errcode, string message)
    {
        context.Response.Headers.WWWAuthenticate = Challenge;
        return Results.Content(MatrixErrorMiddleware.ErrorBody(errcode, message), "application/json", Encoding.UTF8, 401);
    }
}

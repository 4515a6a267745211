using Homeserver.Accounts;
using Homeserver.Errors;
using Microsoft.Extensions.Options;

namespace Homeserver.Api.Http;

/// <summary>Reads the access token (Authorization: Bearer, or the deprecated <c>access_token</c> query parameter).</summary>
public static class RequestAuth
{
    public static string? AccessToken(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        if (header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return header["Bearer ".Length..].Trim();
        var query = request.Query["access_token"].ToString();
        return string.IsNullOrEmpty(query) ? null : query;
    }

    /// <summary>The requester, or 401 <c>M_MISSING_TOKEN</c> / <c>M_UNKNOWN_TOKEN</c>. Records where the requester's
    /// client connected from (in memory; see <see cref="ClientIpBatch"/>).</summary>
    public static async ValueTask<Requester> RequireUserAsync(HttpContext context)
    {
        var token = AccessToken(context.Request)
            ?? throw new MatrixException(ErrorCodes.MissingToken, "Missing access token", 401);
        var authenticator = context.RequestServices.GetRequiredService<IAccessTokenAuthenticator>();
        var requester = await authenticator.AuthenticateAsync(token)
            ?? throw new MatrixException(ErrorCodes.UnknownToken, "Unrecognised access token", 401, """{"soft_logout":false}""");
        // The connection's own address: no forwarded-headers handling is configured, and trusting X-Forwarded-For
        // from anyone would let clients write what they like here.
        context.RequestServices.GetRequiredService<ClientIpBatch>().Record(requester.UserId, requester.DeviceId,
            context.Connection.RemoteIpAddress, context.Request.Headers.UserAgent);
        context.Items[AuthenticatedUserKey] = requester.UserId;
        return requester;
    }

    private static readonly object AuthenticatedUserKey = new();

    /// <summary>The user this request authenticated as, if it did (for the request log).</summary>
    public static string? AuthenticatedUser(HttpContext context) => context.Items[AuthenticatedUserKey] as string;

    /// <summary>The requester if they are a server admin (named in <c>Homeserver:AdminUsers</c>, or an account with the
    /// admin flag); 401 without a valid token, 403 <c>M_FORBIDDEN</c> for anyone else, as Synapse's admin API answers.</summary>
    public static async ValueTask<Requester> RequireAdminAsync(HttpContext context)
    {
        var requester = await RequireUserAsync(context);
        if (!await IsAdminAsync(context, requester.UserId)) throw MatrixException.Forbidden("You are not a server admin");
        return requester;
    }

    /// <summary>Whether <paramref name="userId"/> is a server admin (configuration or account flag).</summary>
    public static async ValueTask<bool> IsAdminAsync(HttpContext context, string userId)
    {
        var options = context.RequestServices.GetRequiredService<IOptions<HomeserverOptions>>().Value;
        if (options.AdminUsers.Contains(userId, StringComparer.Ordinal)) return true;
        return await context.RequestServices.GetRequiredService<IGrainFactory>().GetGrain<IUserGrain>(userId).IsAdminAsync();
    }
}

using System.Text.Json.Nodes;
using Homeserver.Accounts;
using Homeserver.Api.Http;
using Homeserver.Errors;
using Microsoft.Extensions.Options;

namespace Homeserver.Api.Endpoints;

/// <summary>
/// OpenID (spec: Client-Server "OpenID" and Server-Server "OpenID"): a user asks for a token to show a third party
/// (an integration manager, a widget), which exchanges it here for the user's id. The exchange is the one federation
/// endpoint this server has; it needs no federation signing, only the token.
/// </summary>
public static class OpenIdEndpoints
{
    public static IEndpointRouteBuilder MapOpenIdEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPost($"{RoomEndpoints.Prefix}/user/{{userId}}/openid/request_token", RequestToken);
        app.MapGet("/_matrix/federation/v1/openid/userinfo", UserInfo);
        return app;
    }

    private static async Task<IResult> RequestToken(HttpContext context, string userId, OpenIdTokens tokens, IOptions<HomeserverOptions> options)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        JsonBody.Object(context.Request); // a JSON object, usually empty
        if (RoomWrites.Segment(userId) != requester.UserId) throw MatrixException.Forbidden("Cannot request OpenID tokens for other users");
        var token = await tokens.IssueAsync(requester.UserId);
        return Results.Json(new JsonObject
        {
            ["access_token"] = token,
            ["token_type"] = "Bearer",
            ["matrix_server_name"] = options.Value.ServerName,
            ["expires_in"] = (int)OpenIdTokens.Lifetime.TotalSeconds,
        });
    }

    private static async Task<IResult> UserInfo(HttpContext context, OpenIdTokens tokens)
    {
        var token = QueryParameters.Optional(context, "access_token")
            ?? throw new MatrixException(ErrorCodes.MissingToken, "Missing OpenID token", 401);
        var userId = await tokens.UserOfAsync(token)
            ?? throw new MatrixException(ErrorCodes.UnknownToken, "Unknown or expired OpenID token", 401);
        return Results.Json(new JsonObject { ["sub"] = userId });
    }
}

using System.Text.Json.Nodes;
using Homeserver.Api.Http;
using Homeserver.Errors;

namespace Homeserver.Api.Endpoints;

/// <summary>
/// Third-party identifiers (spec "Adding Account Administrative Contact Information") on a server that verifies no
/// email addresses or phone numbers and trusts no identity server: an account has no 3PIDs, a validation session is
/// never started (400 <c>M_THREEPID_MEDIUM_NOT_SUPPORTED</c>), so none can be added (400
/// <c>M_THREEPID_AUTH_FAILED</c>) or bound (400 <c>M_SERVER_NOT_TRUSTED</c>), and deleting or unbinding one has
/// nothing to unbind (<c>no-support</c>, as Synapse answers without an identity server).
/// </summary>
public static class ThirdPartyIdEndpoints
{
    private const string Prefix = RoomEndpoints.Prefix;
    private static readonly string[] Media = ["email", "msisdn"];

    // The handlers take nothing but the HttpContext: cast to Delegate, so their IResult is written (a bare method group
    // would be taken as a RequestDelegate, which discards it).
    public static IEndpointRouteBuilder MapThirdPartyIdEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapGet($"{Prefix}/account/3pid", (Delegate)GetThreePids);
        app.MapPost($"{Prefix}/account/3pid", (Delegate)AddWithCredentials);
        app.MapPost($"{Prefix}/account/3pid/add", (Delegate)Add);
        app.MapPost($"{Prefix}/account/3pid/bind", (Delegate)Bind);
        app.MapPost($"{Prefix}/account/3pid/delete", (Delegate)Delete);
        app.MapPost($"{Prefix}/account/3pid/unbind", (Delegate)Delete);
        foreach (var medium in Media)
        {
            app.MapPost($"{Prefix}/account/3pid/{medium}/requestToken", (Delegate)RequestToken);
            app.MapPost($"{Prefix}/register/{medium}/requestToken", (Delegate)RequestToken);
            app.MapPost($"{Prefix}/account/password/{medium}/requestToken", (Delegate)RequestToken);
        }
        return app;
    }

    private static async Task<IResult> GetThreePids(HttpContext context)
    {
        await RequestAuth.RequireUserAsync(context);
        return Results.Json(new JsonObject { ["threepids"] = new JsonArray() });
    }

    /// <summary>Validation tokens go out by email or SMS, which this server does not send.</summary>
    private static IResult RequestToken(HttpContext context)
    {
        var body = JsonBody.Object(context.Request);
        JsonBody.RequireString(body, "client_secret");
        throw new MatrixException(ErrorCodes.ThreepidMediumNotSupported,
            "This server does not verify email addresses or phone numbers", 400);
    }

    private static async Task<IResult> Add(HttpContext context)
    {
        await RequestAuth.RequireUserAsync(context);
        var body = JsonBody.Object(context.Request);
        JsonBody.RequireString(body, "client_secret");
        JsonBody.RequireString(body, "sid");
        throw new MatrixException(ErrorCodes.ThreepidAuthFailed, "No validated third-party identifier session found", 400);
    }

    /// <summary>The deprecated form: <c>three_pid_creds</c> from an identity server.</summary>
    private static async Task<IResult> AddWithCredentials(HttpContext context)
    {
        await RequestAuth.RequireUserAsync(context);
        var body = JsonBody.Object(context.Request);
        if (body["three_pid_creds"] is not JsonObject) throw MatrixException.MissingParam("Missing 'three_pid_creds'");
        throw new MatrixException(ErrorCodes.ThreepidAuthFailed, "No validated third-party identifier session found", 400);
    }

    private static async Task<IResult> Bind(HttpContext context)
    {
        await RequestAuth.RequireUserAsync(context);
        var body = JsonBody.Object(context.Request);
        JsonBody.RequireString(body, "id_server");
        throw new MatrixException(ErrorCodes.ServerNotTrusted, "This server trusts no identity server", 400);
    }

    private static async Task<IResult> Delete(HttpContext context)
    {
        await RequestAuth.RequireUserAsync(context);
        var body = JsonBody.Object(context.Request);
        var medium = JsonBody.RequireString(body, "medium");
        JsonBody.RequireString(body, "address");
        if (!Media.Contains(medium)) throw MatrixException.InvalidParam($"Unknown medium '{Quote.Short(medium)}'");
        return Results.Json(new JsonObject { ["id_server_unbind_result"] = "no-support" });
    }
}

using Homeserver.Api.Http;

namespace Homeserver.Api.Endpoints;

/// <summary>
/// Endpoints clients call at start-up for features this homeserver does not offer yet: each answers with the valid,
/// empty shape the spec defines (TURN servers, third-party protocols).
/// </summary>
public static class ClientStartupEndpoints
{
    public static IEndpointRouteBuilder MapClientStartupEndpoints(this IEndpointRouteBuilder app)
    {
        var v3 = app.MapGroup(RoomEndpoints.Prefix);
        v3.MapGet("/voip/turnServer", async (HttpContext c) => { await RequestAuth.RequireUserAsync(c); return Results.Json(new { }); });
        v3.MapGet("/thirdparty/protocols", async (HttpContext c) => { await RequestAuth.RequireUserAsync(c); return Results.Json(new { }); });
        return app;
    }
}

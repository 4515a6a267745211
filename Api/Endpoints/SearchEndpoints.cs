using Homeserver.Api.Http;
using Homeserver.Search;

namespace Homeserver.Api.Endpoints;

/// <summary>Client-Server API: server-side search (<c>POST /search</c>, spec "Server Side Search"), answered by
/// <see cref="EventSearch"/>.</summary>
public static class SearchEndpoints
{
    public static IEndpointRouteBuilder MapSearchEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPost($"{RoomEndpoints.Prefix}/search", SearchAsync);
        return app;
    }

    private static async Task<IResult> SearchAsync(HttpContext context, EventSearch search)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var body = JsonBody.Object(context.Request);
        return Results.Json(await search.SearchAsync(requester, body, QueryParameters.Optional(context, "next_batch"), context.RequestAborted));
    }
}

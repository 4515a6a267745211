using System.Text.Json.Nodes;
using Homeserver.Api.Http;

namespace Homeserver.Api.Endpoints;

/// <summary>What the server supports (spec: "Supported versions" and "Capabilities negotiation").</summary>
public static class ClientInfoEndpoints
{
    /// <summary>The r0 releases too: every r0 endpoint is served under r0 (<see cref="LegacyClientPaths"/>), and clients
    /// that predate v1 look for them, as Synapse lists them.</summary>
    private static readonly string[] SpecVersions =
        ["r0.0.1", "r0.1.0", "r0.2.0", "r0.3.0", "r0.4.0", "r0.5.0", "r0.6.0", "r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10", "v1.11"];

    public const string DefaultRoomVersion = "10";

    public static IEndpointRouteBuilder MapClientInfoEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapGet("/_matrix/client/versions", GetVersions);
        app.MapGet("/_matrix/client/v3/capabilities", (Delegate)GetCapabilities);
        return app;
    }

    private static IResult GetVersions() => Results.Json(new JsonObject
    {
        ["versions"] = new JsonArray(SpecVersions.Select(v => (JsonNode)JsonValue.Create(v)).ToArray()),
        ["unstable_features"] = new JsonObject(),
    });

    private static async Task<IResult> GetCapabilities(HttpContext context)
    {
        await RequestAuth.RequireUserAsync(context);
        var available = new JsonObject();
        for (var v = 1; v <= 11; v++) available[v.ToString(System.Globalization.CultureInfo.InvariantCulture)] = "stable";
        return Results.Json(new JsonObject
        {
            ["capabilities"] = new JsonObject
            {
                ["m.change_password"] = new JsonObject { ["enabled"] = true },
                ["m.room_versions"] = new JsonObject { ["default"] = DefaultRoomVersion, ["available"] = available },
                ["m.set_displayname"] = new JsonObject { ["enabled"] = true },
                ["m.set_avatar_url"] = new JsonObject { ["enabled"] = true },
                ["m.3pid_changes"] = new JsonObject { ["enabled"] = false },
            },
        });
    }
}

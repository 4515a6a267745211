namespace Homeserver.Api.Endpoints;

public static class KeysProfileDirectoryEndpoints
{
    /// <summary>Keys, profile and directory areas (one call from <c>UseHomeserverApi</c>).</summary>
    public static IEndpointRouteBuilder MapKeysProfileDirectoryEndpoints(this IEndpointRouteBuilder app) =>
        app.MapKeysEndpoints().MapKeyBackupEndpoints().MapProfileEndpoints().MapDirectoryEndpoints();
}

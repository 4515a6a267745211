using Homeserver.Api.Endpoints;
using Homeserver.Api.Errors;
using Homeserver.Hosting;

namespace Homeserver.Api;

/// <summary>Builds the front end with a co-hosted silo. Tests and benchmarks build it the same way.</summary>
public static class HomeserverApp
{
    public const string DefaultUrl = "http://localhost:8008";

    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(args);
        configure?.Invoke(builder);
        if (string.IsNullOrEmpty(builder.Configuration["urls"]) && string.IsNullOrEmpty(builder.Configuration["ASPNETCORE_URLS"]))
            builder.WebHost.UseUrls(DefaultUrl);
        builder.AddHomeserverSilo();
        builder.Services.AddHomeserverApi();

        var app = builder.Build();
        app.UseHomeserverApi();
        return app;
    }

    public static IServiceCollection AddHomeserverApi(this IServiceCollection services)
    {
        services.AddSingleton<ReadinessProbe>();
        return services;
    }

    public static WebApplication UseHomeserverApi(this WebApplication app)
    {
        app.UseMiddleware<MatrixErrorMiddleware>();
        app.MapHealthEndpoints();
        app.MapAccountEndpoints();
        app.MapRoomEndpoints();
        app.MapSyncEndpoints();
        app.MapRoomHistoryEndpoints();
        app.MapClientStartupEndpoints();
        app.MapUserStreamEndpoints();
        app.MapKeysProfileDirectoryEndpoints();
        app.MapFallbackEndpoints();
        return app;
    }
}

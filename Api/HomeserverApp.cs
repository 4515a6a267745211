using Homeserver.Api.Endpoints;
using Homeserver.Api.Errors;
using Homeserver.Api.Http;
using Homeserver.Api.Observability;
using Homeserver.Api.RateLimiting;
using Homeserver.Health;
using Homeserver.Hosting;
using Homeserver.Observability;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Homeserver.Api;

/// <summary>Builds the front end: with a co-hosted silo (the default), or as an Orleans client of the cluster's silos
/// (<c>Homeserver:Role=FrontEnd</c>). Tests and benchmarks build it the same way.</summary>
public static class HomeserverApp
{
    public const string DefaultUrl = "http://localhost:8008";

    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(args);
        configure?.Invoke(builder);
        var role = builder.Configuration.GetSection(HomeserverOptions.Section).GetValue<ProcessRole>(nameof(HomeserverOptions.Role));
        if (role == ProcessRole.FrontEnd) builder.AddHomeserverFrontEnd();
        else builder.AddHomeserverSilo();
        var metrics = builder.AddHomeserverObservability(ObservabilityHostingExtensions.InstanceOf(builder.Configuration, role));
        var urls = builder.Configuration["urls"] is { Length: > 0 } configured ? configured
            : builder.Configuration["ASPNETCORE_URLS"] is { Length: > 0 } environment ? environment : DefaultUrl;
        if (metrics is { Enabled: true, Port: { } metricsPort }) urls += ";" + ObservabilityHostingExtensions.MetricsUrl(builder.Configuration, metricsPort);
        builder.WebHost.UseUrls(urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        builder.Services.AddHomeserverApi();

        var app = builder.Build();
        app.UseHomeserverApi();
        return app;
    }

    public static IServiceCollection AddHomeserverApi(this IServiceCollection services)
    {
        services.AddHomeserverOperator();
        services.AddHomeserverRateLimits();
        services.Configure<KestrelServerOptions>(kestrel =>
        {
            // Kestrel answers what it cannot parse with a bare 400/414 before any of our code runs. Header values are
            // taken as Latin-1 (any byte) so that a non-ASCII Authorization or Content-Type reaches the app and gets a
            // Matrix error; request lines up to 64 KiB reach it too (ClientRequestBoundary answers long paths).
            kestrel.RequestHeaderEncodingSelector = _ => System.Text.Encoding.Latin1;
            kestrel.Limits.MaxRequestLineSize = 64 * 1024;
        });
        return services;
    }

    public static WebApplication UseHomeserverApi(this WebApplication app)
    {
        app.UseMiddleware<RequestLogging>();
        app.UseMiddleware<JsonContentType>();
        app.UseMiddleware<MatrixErrorMiddleware>();
        app.UseMiddleware<LegacyClientPaths>();
        app.UseRouting();
        app.UseRateLimiter(); // Homeserver:RateLimits, on the endpoints that name a ClientRateLimit
        app.UseMiddleware<ClientRequestBoundary>();
        app.MapHealthEndpoints();
        app.MapAccountEndpoints();
        app.MapRoomEndpoints();
        app.MapSyncEndpoints();
        app.MapPeekingEndpoints();
        app.MapRoomHistoryEndpoints();
        app.MapSearchEndpoints();
        app.MapLegacySyncEndpoints();
        app.MapOpenIdEndpoints();
        app.MapThirdPartyIdEndpoints();
        app.MapClientStartupEndpoints();
        app.MapPushEndpoints();
        app.MapUserStreamEndpoints();
        app.MapKeysProfileDirectoryEndpoints();
        app.MapMediaEndpoints();
        app.MapAdminEndpoints();
        app.MapSynapseAdminRoomEndpoints();
        app.MapReportingEndpoints();
        app.MapSynapseAdminUserEndpoints();
        app.MapDashboardEndpoints();
        app.MapHomeserverMetrics();
        app.MapFallbackEndpoints();
        return app;
    }
}

namespace Homeserver.Api.RateLimiting;

/// <summary>Wiring of the Client-Server API's rate limits (<c>Homeserver:RateLimits</c>).</summary>
public static class RateLimitingHosting
{
    public static IServiceCollection AddHomeserverRateLimits(this IServiceCollection services)
    {
        services.AddSingleton<RateLimitLeases>();
        services.AddSingleton<ClientRateLimits>();
        services.AddSingleton<ClientRateLimiter>();
        services.AddRateLimiter(_ => { });
        services.AddOptions<Microsoft.AspNetCore.RateLimiting.RateLimiterOptions>()
            .Configure<ClientRateLimiter>((options, limiter) =>
            {
                options.GlobalLimiter = limiter;
                options.OnRejected = ClientRateLimiter.OnRejected;
            });
        return services;
    }
}

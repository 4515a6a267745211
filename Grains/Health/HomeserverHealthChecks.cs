using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Homeserver.Health;

/// <summary>
/// The process's health checks (ASP.NET Core's health checks). Liveness runs none of them: a process that answers is
/// live, and restarting it because the database is down would not bring the database back. Readiness (tag
/// <see cref="ReadyTag"/>) runs all three: the database answers, this process is in the cluster, and its stream
/// reader has caught up with the writers, so a request routed here sees every acknowledged write.
/// </summary>
public static class HomeserverHealthChecks
{
    public const string ReadyTag = "ready";

    public static IServiceCollection AddHomeserverHealthChecks(this IServiceCollection services)
    {
        services.AddSingleton<GatewayConnections>();
        // Orleans' client tells every registered observer when a gateway connection opens or closes (a silo never calls it).
        services.AddSingleton<IClusterConnectionStatusObserver>(sp => sp.GetRequiredService<GatewayConnections>());
        services.AddHealthChecks()
            .AddCheck<DatabaseHealthCheck>("database", HealthStatus.Unhealthy, [ReadyTag])
            .AddCheck<ClusterMembershipHealthCheck>("cluster", HealthStatus.Unhealthy, [ReadyTag])
            .AddCheck<StreamReaderHealthCheck>("stream_reader", HealthStatus.Unhealthy, [ReadyTag]);
        return services;
    }
}

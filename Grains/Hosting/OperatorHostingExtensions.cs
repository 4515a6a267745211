using Homeserver.Health;
using Homeserver.Streams;
using Microsoft.Extensions.DependencyInjection;

namespace Homeserver.Hosting;

public static class OperatorHostingExtensions
{
    /// <summary>What a process serving HTTP needs for its operators: health checks, its row among the cluster's front
    /// ends, and the services behind <c>/_homeserver/admin/v1</c> (cluster and replication status, writer moves).</summary>
    public static IServiceCollection AddHomeserverOperator(this IServiceCollection services)
    {
        services.AddHomeserverHealthChecks();
        services.AddSingleton<FrontEndRegistry>();
        services.AddHostedService(sp => sp.GetRequiredService<FrontEndRegistry>());
        services.AddSingleton<ClusterStatusReader>();
        services.AddSingleton<StreamWriterMover>();
        return services;
    }
}

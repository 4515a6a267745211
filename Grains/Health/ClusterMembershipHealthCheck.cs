using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Orleans.Runtime;

namespace Homeserver.Health;

/// <summary>
/// This process takes part in the cluster: a silo is active in Orleans' membership (not joining, not shutting down,
/// not declared dead); a front end without a silo is connected to at least one gateway.
/// </summary>
public sealed class ClusterMembershipHealthCheck(IServiceProvider services, GatewayConnections gateways) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken ct = default)
    {
        // Only a silo has these; a front end is an Orleans client.
        var silo = services.GetService<ILocalSiloDetails>();
        var membership = services.GetService<IClusterMembershipService>();
        if (silo is not null && membership is not null)
        {
            var status = membership.CurrentSnapshot.GetSiloStatus(silo.SiloAddress);
            var data = new Dictionary<string, object> { ["silo"] = silo.SiloAddress.ToString(), ["silo_status"] = status.ToString() };
            return Task.FromResult(status == SiloStatus.Active
                ? HealthCheckResult.Healthy(data: data)
                : HealthCheckResult.Unhealthy($"This silo is {status} in the cluster's membership", data: data));
        }
        var connected = gateways.Connected;
        var clientData = new Dictionary<string, object> { ["gateways"] = connected };
        return Task.FromResult(connected > 0
            ? HealthCheckResult.Healthy(data: clientData)
            : HealthCheckResult.Unhealthy("This front end is connected to no silo's gateway", data: clientData));
    }
}

/// <summary>How many silo gateways this front end (an Orleans client) is connected to, as Orleans reports them.</summary>
public sealed class GatewayConnections : IClusterConnectionStatusObserver
{
    private int _connected;

    public int Connected => Volatile.Read(ref _connected);

    public void NotifyGatewayCountChanged(int currentNumberOfGateways, int previousNumberOfGateways, bool connectionRecovered) =>
        Volatile.Write(ref _connected, currentNumberOfGateways);

    public void NotifyClusterConnectionLost() => Volatile.Write(ref _connected, 0);
}

using Orleans.Dashboard;

namespace Homeserver.Hosting;

/// <summary>The Orleans dashboard's services (<c>Homeserver:Dashboard:Enabled</c>): on a silo they collect grain and silo
/// figures, on a front end without a silo they only ask the silos. The page itself is mapped by the API, behind admin
/// authentication (the dashboard has none of its own).</summary>
public static class DashboardHosting
{
    public static ISiloBuilder AddHomeserverDashboard(this ISiloBuilder silo, HomeserverOptions options)
    {
        // Its log stream (/Trace) would show admins every log line of the silo: not offered.
        if (options.Dashboard.Enabled) silo.AddDashboard(o => o.HideTrace = true);
        return silo;
    }

    public static IClientBuilder AddHomeserverDashboard(this IClientBuilder client, HomeserverOptions options)
    {
        if (options.Dashboard.Enabled) client.AddDashboard(o => o.HideTrace = true);
        return client;
    }
}

using Orleans.Runtime;

namespace Homeserver.Hosting;

/// <summary>A silo as Orleans' membership table records it.</summary>
/// <param name="Role"><c>combined</c> when a process serving HTTP hosts it (it has a live row in front_ends), else <c>silo</c>.</param>
public sealed record SiloEntry(SiloAddress Address, string Name, string Host, SiloStatus Status, string Role,
    int GatewayPort, DateTime StartedAt, DateTime IAmAliveAt);

public sealed record ClusterStatus(IReadOnlyList<SiloEntry> Silos, IReadOnlyList<FrontEndEntry> FrontEnds);

/// <summary>
/// The cluster's processes: the silos from Orleans' membership (asked through <see cref="IManagementGrain"/>, which
/// reads the membership table, so silos declared dead are listed too until Orleans cleans them up) and the front ends
/// from <see cref="FrontEndRegistry"/>.
/// </summary>
public sealed class ClusterStatusReader(IGrainFactory grains, FrontEndRegistry frontEnds)
{
    public async Task<ClusterStatus> GetAsync()
    {
        var hosts = await grains.GetGrain<IManagementGrain>(0).GetDetailedHosts(onlyActive: false);
        var processes = await frontEnds.ListAsync();
        var now = DateTime.UtcNow;
        var withHttp = processes.Where(p => p.Silo is not null && p.Up(now)).Select(p => p.Silo!).ToHashSet(StringComparer.Ordinal);
        var silos = hosts
            .OrderBy(h => h.Status == SiloStatus.Active ? 0 : 1).ThenByDescending(h => h.StartTime)
            .Select(h => new SiloEntry(h.SiloAddress, h.SiloName, h.HostName, h.Status,
                withHttp.Contains(h.SiloAddress.ToString()) ? "combined" : "silo", h.ProxyPort, h.StartTime, h.IAmAliveTime))
            .ToList();
        return new ClusterStatus(silos, processes);
    }

    /// <summary>The active silo named by <paramref name="silo"/>: its full address (as status reports print it, or
    /// <c>host:port@generation</c>), its endpoint <c>host:port</c>, or its silo name; null when no active silo matches.</summary>
    public async Task<SiloAddress?> FindActiveSiloAsync(string silo)
    {
        var hosts = await grains.GetGrain<IManagementGrain>(0).GetDetailedHosts(onlyActive: true);
        return hosts.Where(h => h.Status == SiloStatus.Active).Select(h => (MembershipEntry?)h).FirstOrDefault(h =>
                h!.SiloAddress.ToString() == silo || h.SiloAddress.ToParsableString() == silo ||
                h.SiloAddress.Endpoint.ToString() == silo || h.SiloName == silo)
            ?.SiloAddress;
    }
}

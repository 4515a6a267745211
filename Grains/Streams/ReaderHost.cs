using Orleans.Runtime;

namespace Homeserver.Streams;

/// <summary>
/// The process a <see cref="SiloStreamReader"/> runs in: a silo, or a front end that is only an Orleans client. Both
/// follow every stream the same way; what differs is how writers know them (a silo's subscriptions are dropped as soon
/// as membership declares it dead, a client's only expire) and whether the reader can see membership change (a silo
/// polls every writer at once when a silo comes or goes; a client, which has no membership view, relies on its
/// backstop and on noticing an unreachable writer).
/// </summary>
public sealed class ReaderHost
{
    private readonly IClusterMembershipService? _membership;

    private ReaderHost(SiloAddress? silo, string name, IClusterMembershipService? membership)
    {
        Silo = silo;
        Name = name;
        _membership = membership;
    }

    /// <summary>Null for a front end without a silo.</summary>
    public SiloAddress? Silo { get; }

    /// <summary>How status reports name this reader.</summary>
    public string Name { get; }

    /// <summary>Changes whenever a silo joins or leaves (always 0 where membership cannot be seen).</summary>
    public long MembershipVersion => _membership?.CurrentSnapshot.Version.Value ?? 0;

    /// <summary>Calls <paramref name="changed"/> on every membership change until <paramref name="ct"/> ends (returns at
    /// once where membership cannot be seen).</summary>
    public async Task WatchMembershipAsync(Action changed, CancellationToken ct)
    {
        if (_membership is null) return;
        try
        {
            await foreach (var _ in _membership.MembershipUpdates.WithCancellation(ct)) changed();
        }
        catch (OperationCanceledException) { }
    }

    public static ReaderHost OfSilo(ILocalSiloDetails silo, IClusterMembershipService membership) =>
        new(silo.SiloAddress, silo.SiloAddress.ToString(), membership);

    /// <param name="name">What tells this front end apart from the others (its host and process).</param>
    public static ReaderHost OfClient(string name) => new(null, name, null);
}

using Orleans.Placement;
using Orleans.Runtime.Placement;

namespace Homeserver.Streams;

/// <summary>
/// Where stream writers live: each writer key has a home among the active silos, chosen by rendezvous hashing
/// (<see cref="StreamWriterHome"/>), so writers spread over the cluster and a silo joining or leaving moves only the
/// writers whose home it is. New activations go to their home (<see cref="StreamWriterPlacementDirector"/>); running
/// writers move there when the membership has settled (<see cref="HomeserverOptions.WriterRebalanceDelay"/>).
/// </summary>
[Serializable, GenerateSerializer, Immutable, SuppressReferenceTracking]
public sealed class StreamWriterPlacement : PlacementStrategy
{
    public static readonly StreamWriterPlacement Instance = new();
}

[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class StreamWriterPlacementAttribute() : PlacementAttribute(StreamWriterPlacement.Instance);

public sealed class StreamWriterPlacementDirector : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var silos = context.GetCompatibleSilos(target);
        // A writer moved on purpose (MoveToAsync) goes where it was sent.
        if (IPlacementDirector.GetPlacementHint(target.RequestContextData, silos) is { } hint) return Task.FromResult(hint);
        return Task.FromResult(StreamWriterHome.Choose(target.GrainIdentity.Key.ToString()!, silos));
    }
}

public static class StreamWriterHome
{
    /// <summary>The silo with the highest hash of (writer key, silo): the same answer on every silo for the same
    /// membership, and a change of membership changes the answer only for the writers of the silos that came or went.</summary>
    public static SiloAddress Choose(string writerKey, IReadOnlyCollection<SiloAddress> silos) =>
        silos.MaxBy(s => Fnv1a.Hash64(writerKey + "@" + s.ToParsableString()))
        ?? throw new InvalidOperationException("No silo to place a stream writer on");
}

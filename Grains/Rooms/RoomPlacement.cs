using Homeserver.Streams;
using Orleans.Placement;
using Orleans.Runtime.Placement;

namespace Homeserver.Rooms;

/// <summary>
/// A room grain activates on the silo that is home to its events writer (<see cref="StreamWriterHome"/>), so that
/// every append, the call a send waits for, is a call within one silo; only the front end's call to the room may
/// cross silos. Pins are not read (a query per room activation): a pinned writer's rooms are one hop from it, as
/// any room was before. A placement, not a rule: a room stays where it activated when writers move.
/// </summary>
[Serializable, GenerateSerializer, Immutable, SuppressReferenceTracking]
public sealed class RoomPlacement : PlacementStrategy
{
    public static readonly RoomPlacement Instance = new();
}

[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class RoomPlacementAttribute() : PlacementAttribute(RoomPlacement.Instance);

public sealed class RoomPlacementDirector(EventShards shards) : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var silos = context.GetCompatibleSilos(target);
        if (!shards.Loaded)
            return Task.FromResult(silos.Contains(context.LocalSilo) ? context.LocalSilo : silos[Random.Shared.Next(silos.Length)]);
        var roomId = target.GrainIdentity.Key.ToString()!;
        return Task.FromResult(StreamWriterHome.Choose(StreamNames.WriterKey(StreamNames.Events, shards.Current.WriterFor(roomId)), silos));
    }
}

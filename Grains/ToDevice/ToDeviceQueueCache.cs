using System.Collections.Immutable;
using Homeserver.Caches;
using Homeserver.Streams;

namespace Homeserver.ToDevice;

/// <summary>
/// Which of a user's devices this silo knows to have an empty to-device queue, so most /sync calls skip the inbox
/// query. A device is marked empty after a sync found nothing new and deleted what the client acknowledged; any
/// to-device row for the user (applied by this silo's reader before its position moves) forgets the user's marks.
/// </summary>
public sealed class ToDeviceQueueCache(CacheRegistry caches) : IStreamRowHandler
{
    public const string CacheName = "to_device.empty_queues";
    private readonly SiloCache<ImmutableHashSet<string>> _empty = caches.Get<ImmutableHashSet<string>>(CacheName, 100_000);

    public string Stream => StreamNames.ToDevice;

    public void Handle(StreamEntry entry)
    {
        if (entry.Key is not null) _empty.Invalidate(entry.Key);
    }

    public bool IsEmpty(string userId, string deviceId) => _empty.TryGet(userId, out var devices) && devices.Contains(deviceId);

    /// <summary>The generation to pass to <see cref="MarkEmpty"/>, read before the inbox query.</summary>
    public long Generation => _empty.Generation;

    public void MarkEmpty(string userId, string deviceId, long generation)
    {
        var devices = _empty.TryGet(userId, out var known) ? known : [];
        _empty.Store(userId, devices.Add(deviceId), generation);
    }
}

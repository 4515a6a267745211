using System.Collections.Concurrent;
using Homeserver.Caches;
using Homeserver.Streams;

namespace Homeserver.Sync;

/// <summary>
/// Which members' <c>m.room.member</c> events each device has already been sent in each room while it syncs with
/// lazy-loaded members (spec "Lazy-loading room members"), so that incremental syncs leave out what the client
/// already holds. On this silo and in memory, as Synapse keeps it: a device whose sync lands on another silo, or
/// whose entry was dropped, is sent a member event again (redundant, never missing). Bounded: past
/// <c>Homeserver:Caches:Sizes:sync.lazy_loaded_members</c> (device, room) pairs (100,000) everything is forgotten at once.
/// </summary>
public sealed class LazyLoadedMembers
{
    /// <summary>Its name among the caches (configuration, metrics).</summary>
    public const string Cache = "sync.lazy_loaded_members";

    private readonly int MaxEntries;

    public LazyLoadedMembers(CacheRegistry caches)
    {
        MaxEntries = caches.SizeOf(Cache, 100_000);
        caches.Track(Cache, () => new CacheStatus(Cache, _sent.Count, 0, 0, 0));
    }

    private readonly ConcurrentDictionary<(string User, string Device, string Room), HashSet<string>> _sent = new();

    /// <summary>A sync from scratch (no token, or full state): the device holds none of the room's members yet.</summary>
    public void Reset(string userId, string deviceId, string roomId) => _sent.TryRemove((userId, deviceId, roomId), out _);

    public bool WasSent(string userId, string deviceId, string roomId, string member) =>
        _sent.TryGetValue((userId, deviceId, roomId), out var members) && Contains(members, member);

    public void Record(string userId, string deviceId, string roomId, IEnumerable<string> members)
    {
        // The count (which takes every lock of the dictionary) only when a key is new.
        if (!_sent.TryGetValue((userId, deviceId, roomId), out var set))
        {
            if (_sent.Count >= MaxEntries) _sent.Clear();
            set = _sent.GetOrAdd((userId, deviceId, roomId), _ => new HashSet<string>(StringComparer.Ordinal));
        }
        lock (set)
            foreach (var m in members) set.Add(m);
    }

    private static bool Contains(HashSet<string> members, string member)
    {
        lock (members) return members.Contains(member);
    }
}

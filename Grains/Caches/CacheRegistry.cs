using System.Collections.Concurrent;
using Homeserver.Streams;

namespace Homeserver.Caches;

/// <summary>This silo's named caches. One instance per silo (a DI singleton); never static, because test silos share a process.</summary>
public sealed class CacheRegistry
{
    private readonly ConcurrentDictionary<string, ISiloCache> _caches = new(StringComparer.Ordinal);

    public SiloCache<TValue> Get<TValue>(string name, int capacity = 10_000) =>
        (SiloCache<TValue>)_caches.GetOrAdd(name, n => new SiloCache<TValue>(n, capacity));

    public void Invalidate(string cacheName, string key)
    {
        if (_caches.TryGetValue(cacheName, out var cache)) cache.Invalidate(key);
    }

    public void InvalidateAll(string cacheName)
    {
        if (_caches.TryGetValue(cacheName, out var cache)) cache.InvalidateAll();
    }

    /// <summary>Used when a reader fell behind the pruned part of the caches stream: it can't know what changed.</summary>
    public void InvalidateEverything()
    {
        foreach (var cache in _caches.Values) cache.InvalidateAll();
    }

    public IReadOnlyList<CacheStatus> Status() => _caches.Values.Select(c => c.Status()).OrderBy(s => s.Name, StringComparer.Ordinal).ToList();
}

/// <summary>A <c>caches</c> stream row: drop these keys of that cache on every silo (no keys: drop the whole cache).</summary>
public sealed record CacheInvalidation(string Cache, string[] Keys)
{
    public const string Kind = "invalidate";
}

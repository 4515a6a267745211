using System.Collections.Concurrent;
using Homeserver.Streams;

namespace Homeserver.Caches;

/// <summary>
/// This silo's named caches. One instance per silo (a DI singleton); never static, because test silos share a process.
/// Every cache's bound is its code's default unless <c>Homeserver:Caches:Sizes:{name}</c> sets it; memory that is not a
/// <see cref="SiloCache{TValue}"/> (recent rows, lazy-loading records, unread counts) takes its bound from
/// <see cref="SizeOf"/> and reports its size through <see cref="Track"/>, so every cache shows in the metrics.
/// </summary>
public sealed class CacheRegistry(IReadOnlyDictionary<string, int>? sizes = null)
{
    private readonly ConcurrentDictionary<string, ISiloCache> _caches = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Func<CacheStatus>> _tracked = new(StringComparer.Ordinal);

    /// <summary>The configured bound of the cache <paramref name="name"/>, else <paramref name="fallback"/>.</summary>
    public int SizeOf(string name, int fallback) => sizes is not null && sizes.TryGetValue(name, out var size) ? size : fallback;

    public SiloCache<TValue> Get<TValue>(string name, int capacity = 10_000) =>
        (SiloCache<TValue>)_caches.GetOrAdd(name, n => new SiloCache<TValue>(n, SizeOf(n, capacity)));

    /// <summary>A cache bounded by total weight (<paramref name="capacity"/> in units of <paramref name="weigh"/>).</summary>
    public SiloCache<TValue> Get<TValue>(string name, int capacity, Func<TValue, int> weigh) =>
        (SiloCache<TValue>)_caches.GetOrAdd(name, n => new SiloCache<TValue>(n, SizeOf(n, capacity), weigh));

    /// <summary>Adds memory held outside a <see cref="SiloCache{TValue}"/> to <see cref="Status"/> (and so to the
    /// <c>homeserver.cache.entries</c> gauge).</summary>
    public void Track(string name, Func<CacheStatus> status) => _tracked[name] = status;

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

    public IReadOnlyList<CacheStatus> Status() =>
        _caches.Values.Select(c => c.Status()).Concat(_tracked.Values.Select(t => t())).OrderBy(s => s.Name, StringComparer.Ordinal).ToList();
}

/// <summary>A <c>caches</c> stream row: drop these keys of that cache on every silo (no keys: drop the whole cache).</summary>
public sealed record CacheInvalidation(string Cache, string[] Keys)
{
    public const string Kind = "invalidate";
}

using System.Collections.Concurrent;
using Homeserver.Streams;

namespace Homeserver.Caches;

/// <summary>
/// One named, bounded cache on this silo. Entries are dropped when the <c>caches</c> stream (or a data stream row
/// handler) invalidates their key, on every silo, before the silo's reader advances past that row.
/// </summary>
/// <remarks>
/// A fill races an invalidation when the value was read from the database before the invalidating write committed
/// but is stored after the invalidation ran. Every invalidation bumps a generation; a fill stores its value only if
/// the generation it started under is still current, so a stale read is dropped rather than cached.
/// </remarks>
public sealed class SiloCache<TValue> : ISiloCache
{
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private long _generation;
    private long _hits, _misses, _invalidations, _clock;

    private sealed class Entry(TValue value)
    {
        public readonly TValue Value = value;
        public long LastUsed;
    }

    public SiloCache(string name, int capacity)
    {
        Name = name;
        Capacity = Math.Max(16, capacity);
    }

    public string Name { get; }
    public int Capacity { get; }
    public int Count => _entries.Count;

    public bool TryGet(string key, out TValue value)
    {
        if (_entries.TryGetValue(key, out var e))
        {
            e.LastUsed = Interlocked.Increment(ref _clock);
            Interlocked.Increment(ref _hits);
            value = e.Value;
            return true;
        }
        Interlocked.Increment(ref _misses);
        value = default!;
        return false;
    }

    /// <summary>Returns the cached value or loads it; a load that raced an invalidation is returned but not cached.</summary>
    public async ValueTask<TValue> GetOrLoadAsync(string key, Func<string, Task<TValue>> load)
    {
        if (TryGet(key, out var hit)) return hit;
        var generation = Volatile.Read(ref _generation);
        var value = await load(key);
        Store(key, value, generation);
        return value;
    }

    /// <summary>The generation to pass to <see cref="Store"/> for a value about to be read from the database.</summary>
    public long Generation => Volatile.Read(ref _generation);

    public void Store(string key, TValue value, long generation)
    {
        if (Volatile.Read(ref _generation) != generation) return;
        _entries[key] = new Entry(value) { LastUsed = Interlocked.Increment(ref _clock) };
        // An invalidation may have run between the check above and the store: undo our store if so.
        if (Volatile.Read(ref _generation) != generation) _entries.TryRemove(key, out _);
        if (_entries.Count > Capacity) Evict();
    }

    public void Invalidate(string key)
    {
        Interlocked.Increment(ref _generation);
        Interlocked.Increment(ref _invalidations);
        _entries.TryRemove(key, out _);
    }

    public void InvalidateAll()
    {
        Interlocked.Increment(ref _generation);
        Interlocked.Increment(ref _invalidations);
        _entries.Clear();
    }

    public CacheStatus Status() => new(Name, _entries.Count, Interlocked.Read(ref _hits), Interlocked.Read(ref _misses), Interlocked.Read(ref _invalidations));

    // Drops the least recently used quarter; an O(n log n) pass now and then is cheaper than a linked list on every hit.
    private void Evict()
    {
        var victims = _entries.ToArray().OrderBy(kv => kv.Value.LastUsed).Take(Math.Max(1, _entries.Count - Capacity * 3 / 4));
        foreach (var kv in victims) _entries.TryRemove(kv.Key, out _);
    }
}

public interface ISiloCache
{
    string Name { get; }
    void Invalidate(string key);
    void InvalidateAll();
    CacheStatus Status();
}

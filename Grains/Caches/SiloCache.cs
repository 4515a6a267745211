using System.Collections.Concurrent;
using Homeserver.Streams;

namespace Homeserver.Caches;

/// <summary>
/// One named, bounded cache on this silo. Entries are dropped when the <c>caches</c> stream (or a data stream row
/// handler) invalidates their key, on every silo, before the silo's reader advances past that row. The bound is a
/// number of entries, or with a weight function a total weight (a room's state weighs its events: rooms differ in
/// size by four orders of magnitude); past it the least recently used quarter goes.
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
    private long _hits, _misses, _invalidations, _clock, _size;
    private readonly Func<TValue, int>? _weigh;

    private sealed class Entry(TValue value, int weight)
    {
        public readonly TValue Value = value;
        public readonly int Weight = weight;
        public long LastUsed;
    }

    public SiloCache(string name, int capacity, Func<TValue, int>? weigh = null)
    {
        Name = name;
        Capacity = Math.Max(16, capacity);
        _weigh = weigh;
    }

    public string Name { get; }
    /// <summary>The bound: entries, or the total weight of a weighted cache.</summary>
    public int Capacity { get; }
    public int Count => _entries.Count;
    /// <summary>What the bound counts: entries, or their total weight (an entry of an unweighted cache weighs 1).
    /// Kept in a counter: <c>ConcurrentDictionary.Count</c> takes every one of its locks, and every store asks.</summary>
    public long Size => Interlocked.Read(ref _size);

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
        var entry = new Entry(value, _weigh?.Invoke(value) ?? 1) { LastUsed = Interlocked.Increment(ref _clock) };
        // A value heavier than the whole bound would only push everything else out.
        if (entry.Weight > Capacity) return;
        Put(key, entry);
        // An invalidation may have run between the check above and the store: undo our store if so.
        if (Volatile.Read(ref _generation) != generation) Remove(key);
        if (Size > Capacity) Evict();
    }

    private void Put(string key, Entry entry)
    {
        while (true)
        {
            if (_entries.TryGetValue(key, out var old))
            {
                if (!_entries.TryUpdate(key, entry, old)) continue;
                Interlocked.Add(ref _size, entry.Weight - old.Weight);
                return;
            }
            if (!_entries.TryAdd(key, entry)) continue;
            Interlocked.Add(ref _size, entry.Weight);
            return;
        }
    }

    private void Remove(string key)
    {
        if (_entries.TryRemove(key, out var old)) Interlocked.Add(ref _size, -old.Weight);
    }

    public void Invalidate(string key)
    {
        Interlocked.Increment(ref _generation);
        Interlocked.Increment(ref _invalidations);
        Remove(key);
    }

    /// <summary>
    /// Replaces the cached value of <paramref name="key"/>, if there is one, by what <paramref name="update"/> makes of it:
    /// a change applied in place of an invalidation, for values too costly to load again after every change (a room's
    /// state). Like an invalidation it bumps the generation, so a fill that read from before the change is not stored.
    /// Callers update a key from one thread (the silo's reader), in order.
    /// </summary>
    public void Update(string key, Func<TValue, TValue> update)
    {
        Interlocked.Increment(ref _generation);
        while (_entries.TryGetValue(key, out var e))
        {
            var value = update(e.Value);
            var updated = new Entry(value, _weigh?.Invoke(value) ?? 1) { LastUsed = e.LastUsed };
            if (!_entries.TryUpdate(key, updated, e)) continue;
            // A weighted value grows with the change (a room's state with each new member): keep the bound.
            Interlocked.Add(ref _size, updated.Weight - e.Weight);
            if (Size > Capacity) Evict();
            return;
        }
    }

    public void InvalidateAll()
    {
        Interlocked.Increment(ref _generation);
        Interlocked.Increment(ref _invalidations);
        foreach (var key in _entries.Keys) Remove(key);
    }

    /// <summary>Count is what the bound counts (entries, or the weight of a weighted cache).</summary>
    public CacheStatus Status() => new(Name, (int)Math.Min(int.MaxValue, Size), Interlocked.Read(ref _hits), Interlocked.Read(ref _misses), Interlocked.Read(ref _invalidations));

    // Drops the least recently used quarter; an O(n log n) pass now and then is cheaper than a linked list on every hit.
    private void Evict()
    {
        var target = Capacity * 3L / 4;
        foreach (var kv in _entries.ToArray().OrderBy(kv => kv.Value.LastUsed))
        {
            if (Size <= target) break;
            Remove(kv.Key);
        }
    }
}

public interface ISiloCache
{
    string Name { get; }
    int Capacity { get; }
    void Invalidate(string key);
    void InvalidateAll();
    CacheStatus Status();
}

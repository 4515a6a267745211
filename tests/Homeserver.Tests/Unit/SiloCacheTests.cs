using Homeserver.Caches;

namespace Homeserver.Tests.Unit;

/// <summary>The bounds of the per-silo caches: by entries, or by weight (a room's state by its events), and the
/// configured sizes overriding the code's defaults.</summary>
public sealed class SiloCacheTests
{
    [Fact]
    public void A_weighted_cache_keeps_its_total_weight_within_the_bound_and_drops_the_least_recently_used()
    {
        var cache = new SiloCache<int[]>("test", 100, value => value.Length);
        for (var i = 0; i < 10; i++) cache.Store($"k{i}", new int[10], cache.Generation);
        Assert.Equal(100, cache.Size);
        Assert.True(cache.TryGet("k0", out _)); // k0 is now the most recently used
        cache.Store("big", new int[30], cache.Generation);
        Assert.True(cache.Size <= 100, $"size {cache.Size}");
        Assert.True(cache.TryGet("k0", out _));
        Assert.True(cache.TryGet("big", out _));
        Assert.False(cache.TryGet("k1", out _));
    }

    [Fact]
    public void Replacing_and_invalidating_entries_keeps_the_weight_exact()
    {
        var cache = new SiloCache<int[]>("test", 1_000, value => value.Length);
        cache.Store("a", new int[10], cache.Generation);
        cache.Store("a", new int[25], cache.Generation);
        cache.Store("b", new int[5], cache.Generation);
        Assert.Equal(30, cache.Size);
        cache.Invalidate("a");
        Assert.Equal(5, cache.Size);
        cache.InvalidateAll();
        Assert.Equal(0, cache.Size);
        // A value heavier than the whole bound is not kept (it would push everything else out).
        cache.Store("huge", new int[2_000], cache.Generation);
        Assert.False(cache.TryGet("huge", out _));
        Assert.Equal(0, cache.Size);
    }

    [Fact]
    public void Configured_sizes_override_the_defaults_and_every_cache_reports_its_size()
    {
        var registry = new CacheRegistry(new Dictionary<string, int> { ["rooms.events"] = 500, ["sync.lazy_loaded_members"] = 7 });
        Assert.Equal(500, registry.Get<string>("rooms.events", 50_000).Capacity);
        Assert.Equal(10_000, registry.Get<string>("rooms.info").Capacity);
        Assert.Equal(7, registry.SizeOf("sync.lazy_loaded_members", 100_000));
        var lazy = new Homeserver.Sync.LazyLoadedMembers(registry);
        lazy.Record("@a:x", "D", "!r:x", ["@b:x"]);
        Assert.Contains(registry.Status(), s => s.Name == "sync.lazy_loaded_members" && s.Count == 1);
        for (var i = 0; i < 10; i++) lazy.Record("@a:x", "D", $"!r{i}:x", ["@b:x"]);
        Assert.True(registry.Status().Single(s => s.Name == "sync.lazy_loaded_members").Count <= 7);
    }
}

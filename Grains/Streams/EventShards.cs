using Microsoft.Extensions.Logging;

namespace Homeserver.Streams;

/// <summary>
/// This process's copy of the <c>events</c> shard map (<see cref="IEventShardMapGrain"/>). Loaded before the reader
/// starts and before any room or events writer activates here; refreshed when a writer's notification or position
/// carries a newer generation, and when a routed append is refused.
/// </summary>
public sealed class EventShards(IGrainFactory grains, ILogger<EventShards> logger)
{
    private readonly SemaphoreSlim _loading = new(1, 1);
    private volatile EventShardMap? _map;

    /// <summary>The map as this process last saw it.</summary>
    public EventShardMap Current => _map ?? throw new InvalidOperationException("The events shard map is not loaded yet");

    public bool Loaded => _map is not null;

    public Task EnsureLoadedAsync() => _map is null ? RefreshAsync() : Task.CompletedTask;

    /// <summary>Asks the map grain; keeps whichever of its answer and the copy here is newer.</summary>
    public async Task<EventShardMap> RefreshAsync()
    {
        await _loading.WaitAsync();
        try
        {
            var map = await grains.GetGrain<IEventShardMapGrain>(0).GetAsync();
            var known = _map;
            if (known is null || map.Generation > known.Generation || (map.Generation == known.Generation && map.ReshardingTo != known.ReshardingTo))
            {
                if (known is not null && map.Generation > known.Generation)
                    logger.LogInformation("Events shard map generation {Generation}: {Writers} writers", map.Generation, map.Current.Writers);
                _map = map;
            }
            return _map!;
        }
        finally { _loading.Release(); }
    }

    /// <summary>Waits until the map is past <paramref name="generation"/> and no reshard is sealing the writers
    /// (bounded: a reshard that does not finish within a minute leaves the caller to fail and its client to retry).</summary>
    public async Task<EventShardMap> WaitForRoutingAsync(int generation)
    {
        var deadline = DateTime.UtcNow.AddMinutes(1);
        var delay = TimeSpan.FromMilliseconds(20);
        while (true)
        {
            var map = await RefreshAsync();
            if (map.ReshardingTo is null && map.Generation >= generation) return map;
            if (DateTime.UtcNow > deadline) throw new StreamUnavailableException("The events stream is being resharded; retry");
            await Task.Delay(delay);
            delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromMilliseconds(500).Ticks));
        }
    }
}

using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Homeserver.Streams;

/// <summary>The shard map as grain state (kept by Orleans' ADO.NET persistence in <c>OrleansStorage</c>; the
/// provider's ETag check means two activations cannot both write it). Stored as JSON by the provider's default
/// serializer, which only takes types Orleans generated a serializer for.</summary>
[GenerateSerializer]
public sealed class EventShardMapState
{
    [Id(0)] public List<EventShardGenerationState> Generations { get; set; } = [];
    [Id(1)] public int? ReshardingTo { get; set; }
}

[GenerateSerializer]
public sealed class EventShardGenerationState
{
    [Id(0)] public int Writers { get; set; }
    [Id(1)] public long After { get; set; }
    [Id(2)] public long[] SealedAt { get; set; } = [];
}

/// <summary>
/// The <c>events</c> shard map (see <see cref="IEventShardMapGrain"/>). A new database starts with
/// <see cref="HomeserverOptions.EventWriters"/> writers; from then on the map, not the configuration, decides.
/// </summary>
/// <remarks>
/// A reshard is recorded (<c>ReshardingTo</c>) before any writer is sealed, so an activation that finds it set (the
/// silo running the last one died) finishes it: sealing and opening are idempotent, and a sealed writer asks this
/// grain every few seconds, which activates it.
/// </remarks>
public sealed class EventShardMapGrain(
    [PersistentState("events-shard-map", EventShardMapGrain.Storage)] IPersistentState<EventShardMapState> state,
    IOptions<HomeserverOptions> options,
    ILogger<EventShardMapGrain> logger) : Grain, IEventShardMapGrain
{
    /// <summary>The name of the homeserver's grain storage provider.</summary>
    public const string Storage = "homeserver";

    /// <summary>More writers than this would cost every reader a cursor and a subscription each for little gain.</summary>
    public const int MaxWriters = 64;

    private EventShardMap _map = EventShardMap.Initial(1);

    public override async Task OnActivateAsync(CancellationToken ct)
    {
        if (!state.RecordExists || state.State.Generations.Count == 0)
        {
            state.State = new EventShardMapState
            {
                Generations = [new EventShardGenerationState { Writers = Math.Max(1, options.Value.EventWriters) }],
            };
            await state.WriteStateAsync(ct);
        }
        _map = ToMap(state.State);
        if (state.State.ReshardingTo is not null)
            this.RegisterGrainTimer(async _ => { if (state.State.ReshardingTo is not null) await FinishReshardAsync(); },
                new GrainTimerCreationOptions(TimeSpan.Zero, Timeout.InfiniteTimeSpan));
    }

    public Task<EventShardMap> GetAsync() => Task.FromResult(_map);

    public async Task<EventShardMap> ReshardAsync(int writers)
    {
        if (writers is < 1 or > MaxWriters) throw new ArgumentOutOfRangeException(nameof(writers), $"between 1 and {MaxWriters}");
        if (state.State.ReshardingTo is not null) await FinishReshardAsync();
        if (writers == _map.Current.Writers) return _map;
        state.State.ReshardingTo = writers;
        await state.WriteStateAsync();
        _map = ToMap(state.State);
        await FinishReshardAsync();
        return _map;
    }

    private async Task FinishReshardAsync()
    {
        var target = state.State.ReshardingTo!.Value;
        var before = _map.WriterCount;
        logger.LogInformation("Resharding events from {From} to {To} writers: sealing {Count}", _map.Current.Writers, target, before);
        var sealedAt = await Task.WhenAll(Enumerable.Range(0, before).Select(w => Writer(w).SealAsync()));
        state.State.Generations.Add(new EventShardGenerationState { Writers = target, After = sealedAt.Max(), SealedAt = sealedAt });
        state.State.ReshardingTo = null;
        await state.WriteStateAsync();
        _map = ToMap(state.State);
        await Task.WhenAll(Enumerable.Range(0, Math.Max(before, target)).Select(w => Writer(w).OpenAsync(_map.Generation)));
        logger.LogInformation("Events shard map generation {Generation}: {Writers} writers, after position {After}",
            _map.Generation, target, sealedAt.Max());
    }

    private IStreamWriterGrain Writer(int index) => GrainFactory.GetGrain<IStreamWriterGrain>(StreamNames.WriterKey(StreamNames.Events, index));

    private static EventShardMap ToMap(EventShardMapState s) =>
        new(s.Generations.Select(g => new EventShardGeneration(g.Writers, g.After, g.SealedAt)).ToArray(), s.ReshardingTo);
}

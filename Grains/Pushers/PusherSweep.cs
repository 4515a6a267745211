using Homeserver.Streams;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Homeserver.Pushers;

/// <summary>
/// The backstop of push delivery on each process: a wake-up is a one-way call, lost with the silo that was to run it.
/// Every minute this asks the database for pushers left behind (events for their user past their position) and wakes
/// their grains; a grain that is already delivering finds nothing new. It costs one query a minute per process, and
/// none of it runs when no user has a pusher.
/// </summary>
public sealed class PusherSweep(PusherStore store, PusherDirectory directory, StreamNotifier notifier, IGrainFactory grains,
    ILogger<PusherSweep> logger) : BackgroundService
{
    public static readonly TimeSpan Period = TimeSpan.FromMinutes(1);
    private const int MaxWakesPerSweep = 1_000;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Loaded at start so the first commits here already wake the pushers they concern.
        try { await directory.EnsureLoadedAsync(); }
        catch (Exception e) when (e is not OperationCanceledException) { logger.LogInformation("Pusher directory not loaded yet: {Error}", e.Message); }
        using var timer = new PeriodicTimer(Period);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await directory.EnsureLoadedAsync();
                if (!directory.AnyPushers) continue;
                var upTo = notifier.Current.Min(StreamNames.Events);
                foreach (var (userId, _) in await store.GetBehindAsync(upTo, MaxWakesPerSweep))
                    _ = grains.GetGrain<IPushersGrain>(userId).WakeAsync(upTo);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogInformation("Pusher sweep failed, trying again in {Period}: {Error}", Period, e.Message);
            }
        }
    }
}

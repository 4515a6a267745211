using Homeserver.Streams;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;

namespace Homeserver.Health;

/// <summary>
/// This process's stream reader has started and keeps up: it applies every writer's current position within
/// <see cref="MaxLag"/> of being asked. Positions are compared in time rather than in count because a busy writer is
/// always a few positions ahead of its readers (its notifications are in flight), and a shard's positions are not
/// its own rows (one sequence serves every shard). A reader that is stuck or far behind (a silo that came back after
/// a long pause, a front end that missed notifications and is catching up from the log) stays out of the load
/// balancer until it has caught up, so no one is served a view that lacks writes acknowledged elsewhere.
/// </summary>
public sealed class StreamReaderHealthCheck(
    IHostApplicationLifetime lifetime,
    SiloStreamReader reader,
    StreamNotifier notifier,
    IGrainFactory grains) : IHealthCheck
{
    public static readonly TimeSpan MaxLag = TimeSpan.FromSeconds(2);

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken ct = default)
    {
        // The reader is a hosted service: it has followed every writer once the host has started.
        if (!lifetime.ApplicationStarted.IsCancellationRequested) return HealthCheckResult.Unhealthy("Starting");
        if (lifetime.ApplicationStopping.IsCancellationRequested) return HealthCheckResult.Unhealthy("Stopping");

        WriterPosition[] writers;
        try
        {
            writers = await Task.WhenAll(reader.Writers().Select(w =>
                grains.GetGrain<IStreamWriterGrain>(StreamNames.WriterKey(w.Stream, w.Writer)).GetPositionAsync())).WaitAsync(MaxLag, ct);
        }
        catch (Exception e) when (e is TimeoutException or OrleansException)
        {
            return HealthCheckResult.Unhealthy($"The stream writers did not all answer within {MaxLag.TotalSeconds:0} s: {e.Message}");
        }
        var target = StreamToken.Zero;
        foreach (var w in writers) target = target.Advance(w.Stream, w.Writer, w.Position);
        if (await notifier.WaitForTokenAsync(target, MaxLag, ct)) return HealthCheckResult.Healthy();

        var current = notifier.Current;
        var behind = new Dictionary<string, object>();
        foreach (var w in writers)
        {
            var applied = current.Get(w.Stream, w.Writer);
            if (applied < w.Position) behind[StreamNames.WriterKey(w.Stream, w.Writer)] = w.Position - applied;
        }
        return HealthCheckResult.Unhealthy(
            $"The stream reader did not reach the writers' positions within {MaxLag.TotalSeconds:0} s (positions behind, per writer, in data)",
            data: behind);
    }
}

namespace Homeserver.Streams;

/// <summary>
/// Read-your-writes across silos: a write acknowledged through another silo's front end may not have reached this
/// silo's reader yet. The barrier asks the writers where they are and waits (bounded) until this silo has applied
/// that much. Concurrent requests share one round of questions, but only a round that started after they arrived
/// (an earlier one could predate their write); so a burst of requests costs two rounds, not one per request. A silo
/// never blocks on a writer that is not answering: it falls back to what it has.
/// </summary>
public sealed class ReplicationBarrier(IGrainFactory grains, SiloStreamReader reader, StreamNotifier notifier)
{
    private readonly Lock _lock = new();
    private bool _running;
    private TaskCompletionSource<StreamToken>? _next;

    public async Task<StreamToken> WaitAsync(IReadOnlyCollection<string> streams, TimeSpan timeout, CancellationToken ct = default)
    {
        StreamToken target;
        try { target = await WritersAsync().WaitAsync(timeout, ct); }
        catch (Exception e) when (e is TimeoutException or OrleansException)
        {
            return notifier.Current;
        }
        // Only the streams asked for matter to the caller.
        var wanted = StreamToken.Zero;
        foreach (var stream in streams) wanted = wanted.With(stream, target[stream]);
        await notifier.WaitForTokenAsync(wanted, timeout, ct);
        return notifier.Current;
    }

    /// <summary>Every writer's position, from a round of questions that started after this call.</summary>
    private Task<StreamToken> WritersAsync()
    {
        lock (_lock)
        {
            if (_running)
            {
                // The running round may have started before our caller's write was acknowledged: wait for the next.
                _next ??= new TaskCompletionSource<StreamToken>(TaskCreationOptions.RunContinuationsAsynchronously);
                return _next.Task;
            }
            _running = true;
        }
        var first = new TaskCompletionSource<StreamToken>(TaskCreationOptions.RunContinuationsAsynchronously);
        _ = RunRoundsAsync(first);
        return first.Task;
    }

    private async Task RunRoundsAsync(TaskCompletionSource<StreamToken> round)
    {
        while (true)
        {
            try { round.TrySetResult(await QueryWritersAsync()); }
            catch (Exception e) { round.TrySetException(e); }
            lock (_lock)
            {
                if (_next is null)
                {
                    _running = false;
                    return;
                }
                round = _next;
                _next = null;
            }
        }
    }

    private async Task<StreamToken> QueryWritersAsync()
    {
        var positions = await Task.WhenAll(reader.Writers().Select(w =>
            grains.GetGrain<IStreamWriterGrain>(StreamNames.WriterKey(w.Stream, w.Writer)).GetPositionAsync()));
        var target = StreamToken.Zero;
        foreach (var p in positions) target = target.Advance(p.Stream, p.Writer, p.Position);
        return target;
    }
}

namespace Homeserver.Streams;

/// <summary>
/// Read-your-writes across silos: a write acknowledged through another silo's front end may not have reached this
/// silo's reader yet. The barrier asks the writers of the given streams where they are and waits (bounded) until this
/// silo has applied that much; a silo never blocks on a writer that is not answering, it only falls back to what it has.
/// </summary>
public sealed class ReplicationBarrier(IGrainFactory grains, SiloStreamReader reader, StreamNotifier notifier)
{
    public async Task<StreamToken> WaitAsync(IReadOnlyCollection<string> streams, TimeSpan timeout, CancellationToken ct = default)
    {
        var writers = reader.Writers().Where(w => streams.Contains(w.Stream)).ToList();
        var target = StreamToken.Zero;
        try
        {
            var positions = await Task.WhenAll(writers.Select(w =>
                grains.GetGrain<IStreamWriterGrain>(StreamNames.WriterKey(w.Stream, w.Writer)).GetPositionAsync())).WaitAsync(timeout, ct);
            foreach (var p in positions) target = target.Advance(p.Stream, p.Writer, p.Position);
        }
        catch (Exception e) when (e is TimeoutException or OrleansException)
        {
            return notifier.Current;
        }
        await notifier.WaitForTokenAsync(target, timeout, ct);
        return notifier.Current;
    }
}

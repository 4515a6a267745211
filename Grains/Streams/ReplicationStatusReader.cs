using Microsoft.Extensions.Logging;

namespace Homeserver.Streams;

/// <summary>
/// Gathers every writer's position (with its silo and epoch) and the positions and cache counters of every reader
/// subscribed to them (one per silo and one per front end without a silo), with the operator's pins, for the admin API and tests.
/// </summary>
public sealed class ReplicationStatusReader(IGrainFactory grains, SiloStreamReader localReader, StreamWriterPins pins,
    ILogger<ReplicationStatusReader> logger)
{
    /// <summary>How long a reader may take to answer before the status is given without it (a silo that is dying).</summary>
    private static readonly TimeSpan ReaderTimeout = TimeSpan.FromSeconds(5);

    public async Task<ReplicationStatus> GetAsync()
    {
        var writers = localReader.Writers().Select(k => grains.GetGrain<IStreamWriterGrain>(StreamNames.WriterKey(k.Stream, k.Writer))).ToList();
        var positions = await Task.WhenAll(writers.Select(w => w.GetPositionAsync()));
        var subscribers = (await Task.WhenAll(writers.Select(w => w.GetSubscribersAsync()))).SelectMany(s => s).Distinct().ToList();
        // This process's own reader answers even before the writers list it (it subscribes as it starts).
        var answers = await Task.WhenAll(subscribers.Append(localReader).Select(AskAsync));
        var readers = answers.OfType<ReaderStatus>().DistinctBy(r => r.Silo).OrderBy(r => r.Silo, StringComparer.Ordinal).ToList();
        return new ReplicationStatus(positions, readers, await pins.ListAsync());
    }

    private async Task<ReaderStatus?> AskAsync(IStreamReaderObserver reader)
    {
        try { return await reader.GetStatusAsync().WaitAsync(ReaderTimeout); }
        catch (Exception e)
        {
            logger.LogDebug("A reader did not answer for status: {Message}", e.Message);
            return null;
        }
    }
}

public static class ReplicationStatusLag
{
    /// <summary>How many positions <paramref name="reader"/> is behind <paramref name="writer"/> (0 when it has caught
    /// up; the writers were asked first, so a reader may be ahead of what its writer answered). On a sharded stream
    /// the positions are the shared sequence's, so this bounds the number of the writer's rows not yet applied.</summary>
    public static long LagBehind(this ReaderStatus reader, WriterPosition writer) =>
        reader.Positions.TryGetValue(writer.Stream, out var stream) && stream.TryGetValue(writer.Writer, out var applied)
            ? Math.Max(0, writer.Position - applied)
            : writer.Position;
}

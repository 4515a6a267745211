using Homeserver.Streams;
using Microsoft.Extensions.Logging;

namespace Homeserver.Streams;

/// <summary>Gathers every writer's position and every subscribed silo reader's positions (for admin and metrics).</summary>
public sealed class ReplicationStatusReader(IGrainFactory grains, SiloStreamReader localReader, ILogger<ReplicationStatusReader> logger)
{
    public async Task<ReplicationStatus> GetAsync()
    {
        var writers = localReader.Writers().Select(k => grains.GetGrain<IStreamWriterGrain>(StreamNames.WriterKey(k.Stream, k.Writer))).ToList();
        var positions = await Task.WhenAll(writers.Select(w => w.GetPositionAsync()));
        var subscribers = (await Task.WhenAll(writers.Select(w => w.GetSubscribersAsync()))).SelectMany(s => s).Distinct().ToList();
        var readers = new List<ReaderStatus>();
        foreach (var subscriber in subscribers)
        {
            try { readers.Add(await subscriber.GetStatusAsync().WaitAsync(TimeSpan.FromSeconds(5))); }
            catch (Exception e) { logger.LogDebug("A reader did not answer for status: {Message}", e.Message); }
        }
        return new ReplicationStatus(positions, readers.DistinctBy(r => r.Silo).OrderBy(r => r.Silo, StringComparer.Ordinal).ToList());
    }
}

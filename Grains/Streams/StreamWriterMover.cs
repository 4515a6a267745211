using Homeserver.Errors;
using Homeserver.Hosting;
using Microsoft.Extensions.Logging;

namespace Homeserver.Streams;

/// <summary>
/// An operator's move of one stream writer to a named silo. A move is a placement pin plus a deactivation: the pin
/// (<see cref="StreamWriterPins"/>) makes the silo the writer's home for placement and for rebalancing, so the next
/// activation goes there and stays; then the running activation migrates there when idle (<see cref="IStreamWriterGrain.MoveToAsync"/>).
/// Nothing acknowledged can be lost: appends commit before they are acknowledged, the new activation takes a new
/// epoch (fencing anything the old one still had in flight) and continues from the sequence, and appends sent
/// meanwhile wait for the new activation.
/// </summary>
public sealed class StreamWriterMover(IGrainFactory grains, EventShards shards, StreamWriterPins pins,
    ClusterStatusReader cluster, ILogger<StreamWriterMover> logger)
{
    private static readonly TimeSpan MoveTimeout = TimeSpan.FromSeconds(15);

    /// <summary>Moves <c>{stream}/{writer}</c> to <paramref name="silo"/> (see <see cref="ClusterStatusReader.FindActiveSiloAsync"/>)
    /// and answers where it was and where it is now. 404 for an unknown stream, writer or silo.</summary>
    public async Task<(WriterPosition Before, WriterPosition After)> MoveAsync(string stream, int writer, string silo)
    {
        await RequireWriterAsync(stream, writer);
        var target = await cluster.FindActiveSiloAsync(silo)
            ?? throw MatrixException.NotFound($"No active silo is named '{Quote.Short(silo)}'");

        var grain = grains.GetGrain<IStreamWriterGrain>(StreamNames.WriterKey(stream, writer));
        var before = await grain.GetPositionAsync();
        await pins.SetAsync(stream, writer, StreamWriterHome.Endpoint(target));
        logger.LogInformation("Moving writer {Stream}/{Writer} from {From} to {To}", stream, writer, before.Silo, target);
        await grain.MoveToAsync(target);

        var deadline = DateTime.UtcNow + MoveTimeout;
        var after = before;
        while (after.Silo != target.ToString())
        {
            if (DateTime.UtcNow > deadline)
                throw MatrixException.Unknown($"Writer {stream}/{writer} is pinned to {target} but has not moved there yet (still on {after.Silo})", 503);
            await Task.Delay(50);
            after = await grain.GetPositionAsync();
        }
        return (before, after);
    }

    /// <summary>Removes the pin of <c>{stream}/{writer}</c> (placement and rebalancing then treat it as any other
    /// writer: it goes back to its hash home within <c>WriterRebalanceDelay</c>); answers the endpoint it was pinned
    /// to, or null when it was not pinned. 404 for an unknown stream or writer.</summary>
    public async Task<string?> UnpinAsync(string stream, int writer)
    {
        await RequireWriterAsync(stream, writer);
        // The database first: an activation starting meanwhile reads no pin; then the running one forgets its copy.
        var was = await pins.RemoveAsync(stream, writer);
        await grains.GetGrain<IStreamWriterGrain>(StreamNames.WriterKey(stream, writer)).ForgetPinAsync();
        if (was is not null) logger.LogInformation("Unpinned writer {Stream}/{Writer} from {From}", stream, writer, was);
        return was;
    }

    private async Task RequireWriterAsync(string stream, int writer)
    {
        if (!StreamNames.IsKnown(stream)) throw MatrixException.NotFound($"Unknown stream '{Quote.Short(stream)}'");
        await shards.EnsureLoadedAsync();
        var writers = stream == StreamNames.Events ? shards.Current.WriterCount : 1;
        if (writer < 0 || writer >= writers) throw MatrixException.NotFound($"Stream {stream} has no writer {writer} (it has {writers})");
    }
}

using System.Text.Json.Nodes;
using Homeserver.AccountData;
using Homeserver.Errors;
using Homeserver.Matrix;
using Homeserver.Rooms;
using Homeserver.Streams;

namespace Homeserver.Receipts;

/// <summary>One room's receipt writer (see <see cref="IReceiptsGrain"/>).</summary>
public sealed class ReceiptsGrain(RoomEventStore rooms, ReceiptStore store, Pushers.PusherDirectory pushers) : Grain, IReceiptsGrain
{
    private string RoomId => this.GetPrimaryKeyString();

    public override Task OnActivateAsync(CancellationToken ct) => Storage.StorageOutage.DuringActivationAsync(pushers.EnsureLoadedAsync);

    public async Task<ReadMarkersResult> SetReceiptAsync(string userId, string receiptType, string eventId, string? threadId)
    {
        await RequireJoinedAsync(userId);
        var row = await ReceiptRowAsync(userId, receiptType, eventId, threadId ?? "");
        var position = row is null ? 0 : await UserStreamSync.AppendAsync(GrainFactory, StreamNames.Receipts,
            [UserStreamSync.Row(ReceiptPersister.KindName, RoomId, row)]);
        if (row is not null && receiptType is "m.read" or "m.read.private") WakeBadge(userId);
        return new ReadMarkersResult(position, 0);
    }

    public async Task<ReadMarkersResult> SetReadMarkersAsync(string userId, string? fullyRead, string? read, string? readPrivate)
    {
        await RequireJoinedAsync(userId);
        if (fullyRead is not null) await RequireEventAsync(fullyRead);
        var rows = new List<StreamRow>();
        foreach (var (type, eventId) in new[] { ("m.read", read), ("m.read.private", readPrivate) })
            if (eventId is not null && await ReceiptRowAsync(userId, type, eventId, "") is { } row)
                rows.Add(UserStreamSync.Row(ReceiptPersister.KindName, RoomId, row));
        var receipts = await UserStreamSync.AppendAsync(GrainFactory, StreamNames.Receipts, rows.ToArray());
        if (rows.Count > 0) WakeBadge(userId);
        var accountData = fullyRead is null ? 0 : await GrainFactory.GetGrain<IAccountDataGrain>(userId)
            .SetAsync(RoomId, "m.fully_read", new JsonObject { ["event_id"] = fullyRead }.ToJsonString());
        return new ReadMarkersResult(receipts, accountData);
    }

    /// <summary>A read receipt can lower the user's badge: their pushers tell their devices (one-way, after the commit).</summary>
    private void WakeBadge(string userId)
    {
        if (pushers.HasPushers(userId)) _ = GrainFactory.GetGrain<Pushers.IPushersGrain>(userId).ReceiptMovedAsync(RoomId);
    }

    /// <summary>The row to append, or null when the user already has a receipt at or after that event (receipts
    /// only move forward, as in Synapse).</summary>
    private async Task<ReceiptRow?> ReceiptRowAsync(string userId, string receiptType, string eventId, string threadId)
    {
        var target = await RequireEventAsync(eventId);
        if (await store.GetEventAsync(RoomId, receiptType, userId, threadId) is { } current
            && await rooms.GetEventAsync(current) is { } old && old.Topological >= target.Topological)
            return null;
        return new ReceiptRow(RoomId, receiptType, userId, threadId, eventId, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
    }

    private async Task RequireJoinedAsync(string userId)
    {
        if (await rooms.GetMembershipAsync(RoomId, userId) != "join") throw MatrixException.Forbidden("You are not in this room");
    }

    private async Task<StoredEvent> RequireEventAsync(string eventId)
    {
        if (!Identifiers.IsValidEventId(eventId)) throw MatrixException.InvalidParam("Invalid event id");
        var ev = await rooms.GetEventAsync(eventId);
        return ev is not null && ev.RoomId == RoomId ? ev : throw MatrixException.NotFound("Unknown event in this room");
    }
}

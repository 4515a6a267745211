using System.Text.Json.Nodes;
using Homeserver.AccountData;
using Homeserver.PushRules;
using Homeserver.Rooms;
using Homeserver.Streams;
using Homeserver.Sync;

namespace Homeserver.Receipts;

/// <summary>
/// Receipts in /sync: one <c>m.receipt</c> ephemeral event per joined room with receipts changed in (since, to]
/// (private receipts only for their owner), and <c>unread_notifications</c> for every joined room in the response (with
/// <c>unread_thread_notifications</c> beside it when the filter asks for counts per thread).
/// Registered after the other sections, so it counts for every room they added.
/// </summary>
public sealed class ReceiptsSyncSection(ReceiptStore store, RoomEventStore rooms, RecentReceipts recent, UnreadCounts unread,
    StreamNotifier notifier) : ISyncSection
{
    public IEnumerable<string> WakeKeys(SyncContext context) => context.JoinedRooms;

    /// <summary>One room's receipts as the <c>m.receipt</c> event clients read: event id → receipt type → user → ts.</summary>
    public static JsonObject ReceiptEvent(IEnumerable<ReceiptRow> rows)
    {
        var content = new JsonObject();
        foreach (var r in rows)
        {
            if (content[r.EventId] is not JsonObject byType) content[r.EventId] = byType = new JsonObject();
            if (byType[r.ReceiptType] is not JsonObject byUser) byType[r.ReceiptType] = byUser = new JsonObject();
            var receipt = new JsonObject { ["ts"] = r.Ts };
            if (r.ThreadId.Length > 0) receipt["thread_id"] = r.ThreadId;
            byUser[r.UserId] = receipt;
        }
        return new JsonObject { ["type"] = "m.receipt", ["content"] = content };
    }

    private static JsonObject Counts((long Notifications, long Highlights) counts) =>
        new() { ["notification_count"] = counts.Notifications, ["highlight_count"] = counts.Highlights };

    public async Task ContributeAsync(SyncContext context, JsonObject response)
    {
        var userId = context.Requester.UserId;
        var joined = context.JoinedRooms.Where(context.Filter.IncludesRoom).ToList();
        var ownReceipts = new HashSet<string>(StringComparer.Ordinal);
        if (joined.Count > 0 && context.StreamMoved(StreamNames.Receipts))
        {
            var (since, to) = (UserStreamSync.Since(context, StreamNames.Receipts), UserStreamSync.To(context, StreamNames.Receipts));
            IReadOnlyList<ReceiptRow> changes = context.Since is not null && notifier.Tracks(StreamNames.Receipts, context.Since)
                                                && recent.TryGetChanges(joined, userId, since, to, out var fromMemory)
                ? fromMemory
                : await store.GetChangesAsync(joined, userId, since, to);
            foreach (var room in changes.GroupBy(r => r.RoomId))
            {
                if (room.Any(r => r.UserId == userId)) ownReceipts.Add(room.Key);
                UserStreamSync.Events(context.JoinedRoom(room.Key), "ephemeral").Add(ReceiptEvent(room));
                context.HasChanges = true;
            }
        }

        // Counts change only with new events or receipts; a room here for typing alone keeps the client's last counts.
        if (!context.StreamMoved(StreamNames.Events) && !context.StreamMoved(StreamNames.Receipts)) return;
        // A sync from scratch counts every room: in one go, not a few queries a room.
        Dictionary<string, (long, long)>? initial = null;
        if (context.Since is null && !context.Filter.UnreadThreadNotifications && context.JoinedRoomResponses.Count > 0)
        {
            // The room part read the rooms' states (the user's member event and power levels among them; the member
            // count beside them): only rooms it did not send in full are read here.
            var notRead = context.JoinedRoomResponses.Keys.Where(r => !context.RoomStates.ContainsKey(r)).ToList();
            var states = notRead.Count == 0 ? [] : await rooms.GetCurrentStatesAsync(notRead);
            var wanted = context.JoinedRoomResponses.Keys.Select(roomId =>
            {
                var (known, joined) = context.RoomStates.TryGetValue(roomId, out var read)
                    ? (read.Known, read.JoinedMembers)
                    : (states[roomId], states[roomId].JoinedMemberCount);
                return (roomId, known.DisplayName(userId), new PushRoomContext(joined, known.PowerLevels), rooms.PositionIn(context.To, roomId));
            }).ToList();
            initial = await unread.GetManyAsync(userId, wanted, ownReceipts);
        }
        foreach (var (roomId, roomJson) in context.JoinedRoomResponses)
        {
            if (initial is not null && initial.TryGetValue(roomId, out var counted))
            {
                roomJson["unread_notifications"] = Counts(counted);
                continue;
            }
            // Someone else's receipt or typing changes nothing in this user's counts.
            var newEvents = roomJson["timeline"]?["events"] is JsonArray { Count: > 0 };
            if (context.Since is not null && !newEvents && !ownReceipts.Contains(roomId)) continue;
            var state = await rooms.GetCurrentStateAsync(roomId);
            var to = rooms.PositionIn(context.To, roomId);
            if (context.Filter.UnreadThreadNotifications)
            {
                var (main, threads) = await unread.GetThreadedAsync(roomId, userId, state, to);
                roomJson["unread_notifications"] = Counts(main);
                var byThread = new JsonObject();
                foreach (var (root, counts) in threads) byThread[root] = Counts(counts);
                roomJson["unread_thread_notifications"] = byThread;
                continue;
            }
            roomJson["unread_notifications"] = Counts(await unread.GetAsync(roomId, userId, state, to, fresh: ownReceipts.Contains(roomId)));
        }
    }
}

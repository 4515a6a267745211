using System.Text.Json.Nodes;
using Homeserver.AccountData;
using Homeserver.Rooms;
using Homeserver.Streams;
using Homeserver.Sync;

namespace Homeserver.Receipts;

/// <summary>
/// Receipts in /sync: one <c>m.receipt</c> ephemeral event per joined room with receipts changed in (since, to]
/// (private receipts only for their owner), and <c>unread_notifications</c> for every joined room in the response.
/// Registered after the other sections, so it counts for every room they added.
/// </summary>
public sealed class ReceiptsSyncSection(ReceiptStore store, RoomEventStore rooms) : ISyncSection
{
    public IEnumerable<string> WakeKeys(SyncContext context) => context.JoinedRooms;

    public async Task ContributeAsync(SyncContext context, JsonObject response)
    {
        var userId = context.Requester.UserId;
        var joined = context.JoinedRooms.Where(context.Filter.IncludesRoom).ToList();
        if (joined.Count > 0 && context.StreamMoved(StreamNames.Receipts))
        {
            var changes = await store.GetChangesAsync(joined, userId,
                UserStreamSync.Since(context, StreamNames.Receipts), UserStreamSync.To(context, StreamNames.Receipts));
            foreach (var room in changes.GroupBy(r => r.RoomId))
            {
                var content = new JsonObject();
                foreach (var r in room)
                {
                    if (content[r.EventId] is not JsonObject byType) content[r.EventId] = byType = new JsonObject();
                    if (byType[r.ReceiptType] is not JsonObject byUser) byType[r.ReceiptType] = byUser = new JsonObject();
                    var receipt = new JsonObject { ["ts"] = r.Ts };
                    if (r.ThreadId.Length > 0) receipt["thread_id"] = r.ThreadId;
                    byUser[r.UserId] = receipt;
                }
                UserStreamSync.Events(context.JoinedRoom(room.Key), "ephemeral").Add(new JsonObject { ["type"] = "m.receipt", ["content"] = content });
                context.HasChanges = true;
            }
        }

        // Counts change only with new events or receipts; a room here for typing alone keeps the client's last counts.
        if (!context.StreamMoved(StreamNames.Events) && !context.StreamMoved(StreamNames.Receipts)) return;
        foreach (var (roomId, roomJson) in context.JoinedRoomResponses)
        {
            var me = (await rooms.GetCurrentStateAsync(roomId)).Get("m.room.member", userId);
            var displayName = me is null ? null : RoomEventFormat.ContentString(me.Json, "displayname");
            var (notifications, highlights) = await store.GetUnreadAsync(roomId, userId, displayName,
                context.To.Get(StreamNames.Events, rooms.WriterOf(roomId)));
            roomJson["unread_notifications"] = new JsonObject { ["notification_count"] = notifications, ["highlight_count"] = highlights };
        }
    }
}

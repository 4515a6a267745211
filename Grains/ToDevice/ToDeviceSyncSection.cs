using System.Text.Json.Nodes;
using Homeserver.AccountData;
using Homeserver.Streams;
using Homeserver.Sync;

namespace Homeserver.ToDevice;

/// <summary>
/// The requesting device's to-device queue in /sync. Every message in (since, to] is delivered (never a partial
/// window, so <c>next_batch</c> covers exactly what was sent); the ones at or before <c>since</c> are deleted first,
/// since a client only presents a token after it received the response that carried it.
/// </summary>
public sealed class ToDeviceSyncSection(ToDeviceStore store, ToDeviceQueueCache queues, StreamNotifier notifier) : ISyncSection
{
    public IEnumerable<string> WakeKeys(SyncContext context) => [context.Requester.UserId];

    public async Task ContributeAsync(SyncContext context, JsonObject response)
    {
        var (userId, deviceId) = (context.Requester.UserId, context.Requester.DeviceId);
        if (queues.IsEmpty(userId, deviceId)) return;
        var generation = queues.Generation;
        // A row this silo applied after 'to' invalidated before we read the generation: then we must not mark.
        var appliedBeyondTo = notifier.Current.Get(StreamNames.ToDevice, UserStreamSync.Writer) > UserStreamSync.To(context, StreamNames.ToDevice);
        var messages = await store.TakeAsync(userId, deviceId,
            UserStreamSync.Since(context, StreamNames.ToDevice), UserStreamSync.To(context, StreamNames.ToDevice));
        if (messages.Count == 0)
        {
            // Acknowledged messages were just deleted and nothing newer exists up to 'to'.
            if (context.Since is not null && !appliedBeyondTo) queues.MarkEmpty(userId, deviceId, generation);
            return;
        }
        var events = UserStreamSync.Events(response, "to_device");
        foreach (var m in messages)
            events.Add(new JsonObject { ["sender"] = m.Sender, ["type"] = m.Type, ["content"] = UserStreamSync.ParseJson(m.Content) });
        context.HasChanges = true;
    }
}

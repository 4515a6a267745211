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
public sealed class ToDeviceSyncSection(ToDeviceStore store) : ISyncSection
{
    public IEnumerable<string> WakeKeys(SyncContext context) => [context.Requester.UserId];

    public async Task ContributeAsync(SyncContext context, JsonObject response)
    {
        var messages = await store.TakeAsync(context.Requester.UserId, context.Requester.DeviceId,
            UserStreamSync.Since(context, StreamNames.ToDevice), UserStreamSync.To(context, StreamNames.ToDevice));
        if (messages.Count == 0) return;
        var events = UserStreamSync.Events(response, "to_device");
        foreach (var m in messages)
            events.Add(new JsonObject { ["sender"] = m.Sender, ["type"] = m.Type, ["content"] = UserStreamSync.ParseJson(m.Content) });
        context.HasChanges = true;
    }
}

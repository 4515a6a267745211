using System.Text.Json.Nodes;
using Homeserver.AccountData;
using Homeserver.Streams;

namespace Homeserver.ToDevice;

/// <summary>One user's to-device sender (see <see cref="IToDeviceGrain"/>). Messages for devices that do not exist
/// are dropped, as in Synapse; the transaction is recorded in the same transaction as the messages.</summary>
public sealed class ToDeviceGrain(ToDeviceStore store) : Grain, IToDeviceGrain
{
    public async Task<long> SendAsync(string senderDeviceId, string txnId, string type, string messagesJson)
    {
        var sender = this.GetPrimaryKeyString();
        if (await store.TxnSeenAsync(sender, senderDeviceId, txnId)) return 0;
        var messages = JsonNode.Parse(messagesJson)!.AsObject();
        var devices = await store.GetDevicesAsync(messages.Select(kv => kv.Key).ToList());
        var rows = new List<StreamRow>();
        foreach (var (recipient, byDevice) in messages)
        {
            var known = devices.GetValueOrDefault(recipient) ?? [];
            var perDevice = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var (deviceId, content) in byDevice!.AsObject())
            {
                var json = content!.ToJsonString();
                if (deviceId == "*") foreach (var d in known) perDevice[d] = json;
                else if (known.Contains(deviceId)) perDevice[deviceId] = json;
            }
            rows.Add(UserStreamSync.Row(ToDevicePersister.KindName, recipient,
                new ToDeviceRow(sender, senderDeviceId, txnId, recipient, type, perDevice)));
        }
        return await UserStreamSync.AppendAsync(GrainFactory, StreamNames.ToDevice, rows.ToArray());
    }
}

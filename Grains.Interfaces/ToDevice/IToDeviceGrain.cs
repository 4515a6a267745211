namespace Homeserver.ToDevice;

/// <summary>
/// Sends one user's to-device messages: checks the transaction id, resolves <c>"*"</c> to the recipient's devices and
/// appends one <c>to_device</c> row per recipient user (its key, so only that user's /sync wakes). Key: the sender's
/// user id, so one user's sends are serialised and a retried transaction is recognised.
/// </summary>
public interface IToDeviceGrain : IGrainWithStringKey
{
    /// <summary><paramref name="messagesJson"/> is the request's <c>messages</c> object,
    /// <c>{userId: {deviceId or "*": content}}</c>, already validated. Returns the <c>to_device/0</c> position to wait
    /// for (0 when nothing was sent, e.g. a repeated transaction).</summary>
    [Idempotent]
    Task<long> SendAsync(string senderDeviceId, string txnId, string type, string messagesJson);
}

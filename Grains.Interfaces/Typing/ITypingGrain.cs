namespace Homeserver.Typing;

/// <summary>
/// Who is typing in one room. Key: the room id. The state lives in memory (it is worthless after two minutes); every
/// change, an expiry included, appends the room's full typing list to the <c>typing</c> stream keyed by the room, so
/// positions come from the stream's sequence and stay monotonic when this grain moves or restarts.
/// </summary>
public interface ITypingGrain : IGrainWithStringKey
{
    /// <summary>403 unless <paramref name="userId"/> is joined. <paramref name="timeoutMs"/> is clamped to two minutes.
    /// Returns the <c>typing/0</c> position to wait for (0 when nothing changed).</summary>
    [Idempotent]
    Task<long> SetTypingAsync(string userId, bool typing, long timeoutMs);
}

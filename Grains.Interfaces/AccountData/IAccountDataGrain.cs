namespace Homeserver.AccountData;

/// <summary>
/// The writer of one user's account data (global and per room, tags included): serialises the user's changes, so a
/// tag added on one device and another removed on a second never lose each other, and appends them to the
/// <c>account_data</c> stream. Key: the user id. Methods return the <c>account_data/0</c> position to wait for.
/// Which types clients may set is the endpoint's business; the server itself sets <c>m.fully_read</c>.
/// </summary>
public interface IAccountDataGrain : IGrainWithStringKey
{
    /// <summary>Replaces one account data object; <paramref name="roomId"/> null for global account data.</summary>
    [Idempotent]
    Task<long> SetAsync(string? roomId, string type, string contentJson);

    /// <summary>Adds or replaces one tag in the room's <c>m.tag</c>.</summary>
    [Idempotent]
    Task<long> SetTagAsync(string roomId, string tag, string tagContentJson);

    /// <summary>Removes one tag from the room's <c>m.tag</c> (0 when it was not there).</summary>
    [Idempotent]
    Task<long> RemoveTagAsync(string roomId, string tag);

    /// <summary>After a room upgrade, as Synapse does: the old room's tags become the new room's (unless it has its own)
    /// and every <c>m.direct</c> list naming the old room names the new one too. 0 when nothing changed.</summary>
    [Idempotent]
    Task<long> CopyRoomStateAsync(string oldRoomId, string newRoomId);
}

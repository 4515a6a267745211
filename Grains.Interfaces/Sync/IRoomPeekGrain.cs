namespace Homeserver.Sync;

/// <summary>
/// The room peeks of one user's devices (MSC2753 <c>/peek</c> and <c>/unpeek</c>): a device that peeks into a world
/// readable room sees it under <c>rooms.peek</c> in its /sync without joining. Peeks are rows of the
/// <c>account_data</c> stream, so a peek is visible to the device's next /sync on every silo once the returned
/// position is applied. Key: the user id.
/// </summary>
public interface IRoomPeekGrain : IGrainWithStringKey
{
    /// <summary>Starts peeking for <paramref name="deviceId"/>. <paramref name="roomIdOrAlias"/> is a well-formed room id
    /// or alias. 404 <c>M_NOT_FOUND</c> for an unknown room or alias, 403 <c>M_FORBIDDEN</c> when the room's history is
    /// not world readable. A room the user is joined to stays under <c>rooms.join</c>: nothing is stored (position 0).</summary>
    [Idempotent]
    Task<RoomPeekStarted> PeekAsync(string deviceId, string roomIdOrAlias);

    /// <summary>Stops the device's peek of the room, if any. Returns the <c>account_data/0</c> position to wait for.</summary>
    [Idempotent]
    Task<long> UnpeekAsync(string deviceId, string roomId);
}

/// <summary>The room a peek resolved to and the <c>account_data/0</c> position to wait for (0: nothing written).</summary>
[GenerateSerializer, Immutable]
public sealed record RoomPeekStarted([property: Id(0)] string RoomId, [property: Id(1)] long Position);

namespace Homeserver.Admin;

/// <summary>
/// The deletions of one room by an admin (<c>DELETE /_synapse/admin/v2/rooms/{roomId}</c>): shut the room down (block
/// it, make its local members leave, move or delete its aliases, take it out of the directory, optionally open a new
/// room for its members with a message) and purge it from the database. Runs in the background of this grain and
/// records every step in <c>room_deletions</c>, so the status can be read anywhere and an interrupted deletion (its
/// silo lost) resumes from what it recorded when next asked about. Key: the room id.
/// </summary>
public interface IRoomDeletionGrain : IGrainWithStringKey
{
    /// <summary>Schedules a deletion and answers its id at once. 400 "Purge already in progress for …" while one of
    /// this room runs, as Synapse answers.</summary>
    Task<string> StartAsync(RoomDeletionRequest request);

    /// <summary>Every deletion of the room, oldest first (resuming an interrupted one first).</summary>
    Task<RoomDeletionStatus[]> GetStatusAsync();
}

/// <summary>The body of the DELETE, with the admin who sent it. Synapse's defaults: purge true, the rest off.</summary>
[GenerateSerializer, Immutable]
public sealed record RoomDeletionRequest(
    [property: Id(0)] string RequesterUserId,
    [property: Id(1)] bool Block,
    [property: Id(2)] bool Purge,
    [property: Id(3)] bool ForcePurge,
    [property: Id(4)] string? Message,
    [property: Id(5)] string? NewRoomUserId,
    [property: Id(6)] string? RoomName);

/// <summary>One deletion: its status (<c>scheduled</c>, <c>active</c>, <c>complete</c>, <c>failed</c>), the
/// <c>shutdown_room</c> object as JSON text and the error of a failed one.</summary>
[GenerateSerializer, Immutable]
public sealed record RoomDeletionStatus(
    [property: Id(0)] string DeleteId,
    [property: Id(1)] string RoomId,
    [property: Id(2)] string Status,
    [property: Id(3)] string ShutdownRoomJson,
    [property: Id(4)] string? Error);

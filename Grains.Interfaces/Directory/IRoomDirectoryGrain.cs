// The namespace is RoomDirectory rather than Directory, which would hide System.IO.Directory in every Homeserver.* namespace.
namespace Homeserver.RoomDirectory;

/// <summary>
/// A room's entries in the directory: its aliases and whether it is published in the public room list. Key: the room
/// id. Alias uniqueness across rooms is decided by the aliases table's primary key; permission checks read the room's
/// current state as this silo knows it.
/// </summary>
public interface IRoomDirectoryGrain : IGrainWithStringKey
{
    /// <summary>Points <paramref name="alias"/> at this room. 409 <c>M_UNKNOWN</c> when the alias exists; 403 when the
    /// user is not joined to the room.</summary>
    Task CreateAliasAsync(string alias, string userId);

    /// <summary>Removes an alias of this room: its creator, or a user who may set <c>m.room.canonical_alias</c>.
    /// 404 <c>M_NOT_FOUND</c> for an unknown alias, 403 otherwise. When the room's <c>m.room.canonical_alias</c> names
    /// the alias, a new one without it is sent as the user (as Synapse does; skipped when the user may not send it);
    /// the result is that event's write, to wait for (position 0 when none was sent).</summary>
    Task<Rooms.RoomWriteResult> DeleteAliasAsync(string alias, string userId);

    /// <summary>Publishes the room or withdraws it; the user must be joined and able to set
    /// <c>m.room.canonical_alias</c>. 404 for an unknown room.</summary>
    Task SetVisibilityAsync(string userId, bool isPublic);
}

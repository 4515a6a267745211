using Homeserver.AccountData;
using Homeserver.Errors;
using Homeserver.Rooms;
using Homeserver.Streams;

namespace Homeserver.Sync;

/// <summary>One user's room peeks (see <see cref="IRoomPeekGrain"/>). Holds no state: the rows say what each device
/// peeks into, and /sync reads them through <see cref="RoomPeekStore"/>.</summary>
public sealed class RoomPeekGrain(RoomEventStore rooms) : Grain, IRoomPeekGrain
{
    private string UserId => this.GetPrimaryKeyString();

    public async Task<RoomPeekStarted> PeekAsync(string deviceId, string roomIdOrAlias)
    {
        var roomId = roomIdOrAlias.StartsWith('#')
            ? await rooms.ResolveAliasAsync(roomIdOrAlias) ?? throw MatrixException.NotFound($"Room alias {roomIdOrAlias} not found")
            : roomIdOrAlias;
        var state = await rooms.GetCurrentStateAsync(roomId);
        if (!state.Exists) throw MatrixException.NotFound("Unknown room");
        // A member reads the room as a member; a stored peek would only come back once they leave, which a join ends.
        if (state.Membership(UserId) == "join") return new RoomPeekStarted(roomId, 0);
        if (!state.IsWorldReadable)
            throw MatrixException.Forbidden("Only rooms whose history is world readable can be peeked into");
        var position = await UserStreamSync.AppendAsync(GrainFactory, StreamNames.AccountData,
            [UserStreamSync.Row(RoomPeekRows.StartKind, UserId, new RoomPeekRow(UserId, deviceId, roomId))]);
        return new RoomPeekStarted(roomId, position);
    }

    public Task<long> UnpeekAsync(string deviceId, string roomId) =>
        UserStreamSync.AppendAsync(GrainFactory, StreamNames.AccountData,
            [UserStreamSync.Row(RoomPeekRows.StopKind, UserId, new RoomPeekRow(UserId, deviceId, roomId))]);
}

using Homeserver.Errors;
using Homeserver.Matrix;
using Homeserver.Rooms;
using Microsoft.Extensions.Logging;

namespace Homeserver.RoomDirectory;

/// <summary>A room's aliases and directory visibility (see <see cref="IRoomDirectoryGrain"/>).</summary>
public sealed class RoomDirectoryGrain(AliasStore aliases, PublicRoomStore publicRooms, RoomEventStore rooms,
    ILogger<RoomDirectoryGrain> logger) : Grain, IRoomDirectoryGrain
{
    private string RoomId => this.GetPrimaryKeyString();

    public async Task CreateAliasAsync(string alias, string userId)
    {
        var state = await StateAsync();
        // Synapse requires membership for alias creation (require_membership_for_aliases, on by default); an unknown
        // room fails the same check.
        if (state?.Membership(userId) != "join") throw MatrixException.Forbidden($"User {userId} not in room {RoomId}");
        if (!await aliases.CreateAsync(alias, RoomId, userId))
            throw new MatrixException(ErrorCodes.Unknown, $"Room alias {alias} already exists", 409);
    }

    public async Task<RoomWriteResult> DeleteAliasAsync(string alias, string userId)
    {
        var existing = await aliases.GetAsync(alias);
        if (existing is null || existing.RoomId != RoomId) throw MatrixException.NotFound($"Room alias {alias} not found");
        if (existing.Creator != userId && !await CanChangeDirectoryAsync(userId))
            throw MatrixException.Forbidden("You don't have permission to delete the alias.");
        await aliases.DeleteAsync(alias, RoomId);
        return await RemoveFromCanonicalAliasAsync(alias, userId);
    }

    /// <summary>
    /// A canonical alias event must only name aliases of the room, so a deleted one leaves it (as <c>alias</c> or
    /// among <c>alt_aliases</c>); the room grain reads its own state for that. The alias is gone either way: when the
    /// user may not send the event, the stale entry stays, as in Synapse.
    /// </summary>
    private async Task<RoomWriteResult> RemoveFromCanonicalAliasAsync(string alias, string userId)
    {
        try
        {
            return await GrainFactory.GetGrain<IRoomGrain>(RoomId).RemoveCanonicalAliasAsync(alias, userId);
        }
        catch (MatrixException e) when (e.Status == 403)
        {
            logger.LogInformation("Alias {Alias} deleted but {User} may not update the canonical alias of {Room}: {Message}", alias, userId, RoomId, e.Message);
            return new RoomWriteResult(null, 0, 0);
        }
    }

    public async Task SetVisibilityAsync(string userId, bool isPublic)
    {
        if (await publicRooms.IsPublishedAsync(RoomId) is null) throw MatrixException.NotFound("Unknown room");
        if (!await CanChangeDirectoryAsync(userId))
            throw MatrixException.Forbidden("This user is not permitted to edit the room directory");
        await publicRooms.SetPublishedAsync(RoomId, isPublic);
    }

    /// <summary>A joined user whose power level would let them send <c>m.room.canonical_alias</c> (Synapse's
    /// check_can_change_room_list).</summary>
    private async Task<bool> CanChangeDirectoryAsync(string userId)
    {
        var state = await StateAsync();
        if (state?.Membership(userId) != "join") return false;
        var levels = state.PowerLevels;
        return levels.GetUserLevel(userId) >= levels.GetEventLevel("m.room.canonical_alias", isState: true);
    }

    private async Task<RoomState?> StateAsync()
    {
        var current = await rooms.GetCurrentStateAsync(RoomId);
        return current.Exists ? RoomState.FromJson(current.Events.Select(e => e.Json)) : null;
    }
}

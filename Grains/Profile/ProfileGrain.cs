using System.Text.Json.Nodes;
using Homeserver.Errors;
using Homeserver.Rooms;
using Homeserver.Streams;
using Microsoft.Extensions.Logging;

namespace Homeserver.Profile;

/// <summary>
/// One user's profile (see <see cref="IProfileGrain"/>). Serialises a user's profile changes so the member events
/// reach each room in the order the changes were made. It calls room grains but is never called by one (rooms read
/// profiles from <see cref="ProfileStore"/>), so the two cannot deadlock.
/// </summary>
public sealed class ProfileGrain(ProfileStore store, ILogger<ProfileGrain> logger) : Grain, IProfileGrain
{
    public async Task<ProfileUpdateResult> SetAsync(ProfileUpdate update)
    {
        var userId = this.GetPrimaryKeyString();
        var current = await store.GetAsync(userId) ?? throw MatrixException.NotFound("Unknown user");
        var profile = new UserProfile(
            update.SetDisplayName ? update.DisplayName : current.DisplayName,
            update.SetAvatarUrl ? update.AvatarUrl : current.AvatarUrl);

        var writer = GrainFactory.GetGrain<IStreamWriterGrain>(StreamNames.WriterKey(StreamNames.Caches, 0));
        var position = (await writer.AppendAsync(ProfileRows.Set(userId, profile))).LastPosition;

        var writes = new List<RoomWriteResult>();
        foreach (var roomId in await store.GetJoinedRoomsAsync(userId))
        {
            var content = new JsonObject { ["membership"] = "join" };
            if (profile.DisplayName is not null) content["displayname"] = profile.DisplayName;
            if (profile.AvatarUrl is not null) content["avatar_url"] = profile.AvatarUrl;
            try
            {
                writes.Add(await GrainFactory.GetGrain<IRoomGrain>(roomId).SendAsync(
                    new SendEventCommand(userId, null, null, "m.room.member", userId, content.ToJsonString())));
            }
            catch (MatrixException e)
            {
                // One room refusing (e.g. the user was just kicked) must not stop the others.
                logger.LogInformation("Profile update of {User} not sent to {Room}: {Error}", userId, roomId, e.Message);
            }
        }
        return new ProfileUpdateResult(position, writes.ToArray());
    }
}

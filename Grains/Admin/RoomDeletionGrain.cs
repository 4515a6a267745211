using System.Text.Json;
using System.Text.Json.Nodes;
using Homeserver.Errors;
using Homeserver.Matrix;
using Homeserver.RoomDirectory;
using Homeserver.Rooms;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Homeserver.Admin;

/// <summary>
/// Runs a room's deletions (see <see cref="IRoomDeletionGrain"/>), in Synapse's order (<c>RoomShutdownHandler</c>,
/// then the purge). Every step is safe to repeat, which is what makes resuming safe: blocking is an upsert, a member
/// who already left is no longer listed, the new room is created once (its id is recorded before anything uses it),
/// aliases already moved are gone from the old room, and purging a purged room finds nothing.
/// Members leave as themselves through the room grain, so their leaves are ordinary events that every silo's reader,
/// cache and /sync sees. Unlike Synapse, they are not also made to forget the room: a forgotten leave is left out of
/// their next /sync, and their clients would never hear that they left.
/// </summary>
public sealed class RoomDeletionGrain(RoomDeletionStore store, BlockedRooms blocked, AliasStore aliases,
    PublicRoomStore directory, IOptions<HomeserverOptions> options, ILogger<RoomDeletionGrain> logger) : Grain, IRoomDeletionGrain
{
    public const string DefaultMessage = "Sharing illegal content on this server is not permitted and rooms in violation will be blocked.";
    public const string DefaultRoomName = "Content Violation Notification";

    private string RoomId => this.GetPrimaryKeyString();
    private Task? _running;

    public async Task<string> StartAsync(RoomDeletionRequest request)
    {
        if (await ResumeAsync()) throw InProgress();
        var deleteId = Identifiers.RandomString(16);
        await store.InsertAsync(deleteId, RoomId, request);
        Run(deleteId, request, ShutdownRoomResult.Empty());
        return deleteId;
    }

    public async Task<RoomDeletionStatus[]> GetStatusAsync()
    {
        await ResumeAsync();
        return (await store.ForRoomAsync(RoomId)).Select(s => s.Status).ToArray();
    }

    private MatrixException InProgress() => new(ErrorCodes.Unknown, $"Purge already in progress for {RoomId}", 400);

    /// <summary>Whether a deletion is running (true), resuming one this activation did not start: its silo was lost
    /// while it ran, and its row says scheduled or active.</summary>
    private async Task<bool> ResumeAsync()
    {
        if (_running is { IsCompleted: false }) return true;
        var unfinished = (await store.ForRoomAsync(RoomId)).FirstOrDefault(s => s.Status.Status is RoomDeletionStore.Scheduled or RoomDeletionStore.Active);
        if (unfinished is null) return false;
        logger.LogInformation("Resuming deletion {DeleteId} of {Room}", unfinished.Status.DeleteId, RoomId);
        var result = JsonSerializer.Deserialize<ShutdownRoomResult>(unfinished.Status.ShutdownRoomJson, RoomDeletionStore.Json) ?? ShutdownRoomResult.Empty();
        Run(unfinished.Status.DeleteId, unfinished.Request, result);
        return true;
    }

    private void Run(string deleteId, RoomDeletionRequest request, ShutdownRoomResult result)
    {
        // Idle collection would stop the work half way; an hour covers any room this server can hold.
        DelayDeactivation(TimeSpan.FromHours(1));
        _running = RunAsync(deleteId, request, result);
    }

    private async Task RunAsync(string deleteId, RoomDeletionRequest request, ShutdownRoomResult result)
    {
        try
        {
            await store.UpdateAsync(deleteId, RoomDeletionStore.Active, result);
            result = await ShutDownAsync(deleteId, request, result);
            if (request.Purge && await store.RoomExistsAsync(RoomId))
                await GrainFactory.GetGrain<IRoomGrain>(RoomId).PurgeAsync(request.ForcePurge);
            await store.UpdateAsync(deleteId, RoomDeletionStore.Complete, result);
            logger.LogInformation("Deletion {DeleteId} of {Room} complete", deleteId, RoomId);
        }
        catch (Exception e)
        {
            logger.LogWarning(e, "Deletion {DeleteId} of {Room} failed", deleteId, RoomId);
            try { await store.UpdateAsync(deleteId, RoomDeletionStore.Failed, result, e is MatrixException m ? m.Message : e.Message); }
            catch (Exception again) { logger.LogError(again, "Deletion {DeleteId} of {Room}: its failure was not recorded", deleteId, RoomId); }
        }
        finally { DelayDeactivation(TimeSpan.Zero); }
    }

    private async Task<ShutdownRoomResult> ShutDownAsync(string deleteId, RoomDeletionRequest request, ShutdownRoomResult result)
    {
        // The block comes first and even for a room this server does not know, as in Synapse.
        if (request.Block) await blocked.BlockAsync(RoomId, request.RequesterUserId);
        if (!await store.RoomExistsAsync(RoomId)) return result;

        var room = GrainFactory.GetGrain<IRoomGrain>(RoomId);
        var newRoomId = result.NewRoomId;
        if (request.NewRoomUserId is { } creator && newRoomId is null)
        {
            newRoomId = Identifiers.NewRoomId(options.Value.ServerName);
            await GrainFactory.GetGrain<IRoomGrain>(newRoomId).CreateAsync(new CreateRoomCommand(
                creator, null, RoomVersions.Default, "public_chat", false, request.RoomName ?? DefaultRoomName, null, null, [], false,
                null, new JsonObject { ["users_default"] = -10 }.ToJsonString(), []));
            result = result with { NewRoomId = newRoomId };
            await store.UpdateAsync(deleteId, RoomDeletionStore.Active, result);
        }

        foreach (var (userId, membership) in await store.LocalMembersAsync(RoomId, options.Value.ServerName))
        {
            try
            {
                await room.SetMembershipAsync(new MembershipCommand(userId, userId, MembershipAction.Leave, null));
                if (newRoomId is not null && membership == "join")
                    await GrainFactory.GetGrain<IRoomGrain>(newRoomId).SetMembershipAsync(new MembershipCommand(userId, userId, MembershipAction.Join, null));
                result.KickedUsers.Add(userId);
            }
            catch (Exception e) when (e is MatrixException or DependencyUnavailableException or TimeoutException)
            {
                logger.LogWarning("Deletion {DeleteId}: {User} could not leave {Room}: {Error}", deleteId, userId, RoomId, e.Message);
                result.FailedToKickUsers.Add(userId);
            }
            await store.UpdateAsync(deleteId, RoomDeletionStore.Active, result);
        }

        var localAliases = await aliases.GetAliasesForRoomAsync(RoomId);
        if (request.NewRoomUserId is { } sender && newRoomId is not null)
        {
            await GrainFactory.GetGrain<IRoomGrain>(newRoomId).SendAsync(new SendEventCommand(sender, null, null, "m.room.message", null,
                new JsonObject { ["body"] = request.Message ?? DefaultMessage, ["msgtype"] = "m.text" }.ToJsonString()));
            foreach (var alias in localAliases)
                if (await aliases.DeleteAsync(alias, RoomId)) await aliases.CreateAsync(alias, newRoomId, request.RequesterUserId);
            // A resumed run finds the aliases it moved gone from the old room: keep the list it recorded.
            result = result with { LocalAliases = result.LocalAliases.Union(localAliases).ToList() };
        }
        else
        {
            // Synapse leaves them pointing at a dead room (and answers none here); an alias should not outlive its room.
            foreach (var alias in localAliases) await aliases.DeleteAsync(alias, RoomId);
        }
        await directory.SetPublishedAsync(RoomId, false);
        await store.UpdateAsync(deleteId, RoomDeletionStore.Active, result);
        return result;
    }
}

using System.Text.Json.Nodes;
using Homeserver.AccountData;
using Homeserver.Accounts;
using Homeserver.Caches;
using Homeserver.Rooms;
using Homeserver.Streams;
using Homeserver.Sync;
using Microsoft.Extensions.Options;

namespace Homeserver.Presence;

/// <summary>
/// Presence in /sync: a sync is activity (<c>set_presence</c>, default online), and the presence of the user and of
/// everyone who shares a joined room with them that changed in (since, to] (initial sync: everyone's current state).
/// The user's own presence is included but neither wakes nor ends their long-poll: every sync may change it, and a
/// client's next poll would otherwise always return at once. Nothing when presence is disabled.
/// </summary>
public sealed class PresenceSyncSection(PresenceStore store, RecentPresence recent, RoomEventStore rooms, RoomSyncStates roomStates, CacheRegistry caches, IGrainFactory grains,
    IOptions<PresenceOptions> options, StreamNotifier notifier) : ISyncSection
{
    public IEnumerable<string> WakeKeys(SyncContext context) => [];

    // Synchronous by contract: the co-members come from the sets ContributeAsync just read (a room's state snapshot, or
    // its joined-member set). Each room's set is the one the silo's cache shares: a long-poll in a room of 10,000
    // registers one family, not 10,000 keys. A wake-up by presence alone is held back (PresenceWakeDelay) to gather the changes that follow it.
    public IEnumerable<KeyFamily> WakeKeyFamilies(SyncContext context)
    {
        if (!options.Value.EnablePresence) return [];
        var families = new List<KeyFamily>();
        foreach (var roomId in context.JoinedRooms)
            if (RoomCaches.CachedJoinedMembers(caches, roomId) is { } members)
                families.Add(new KeyFamily(StreamNames.Presence, PresenceStore.KeyPrefix, members, context.Requester.UserId,
                    options.Value.PresenceWakeDelay));
        return families;
    }

    public Task RequestStartedAsync(Requester requester, SyncRequest request) =>
        options.Value.EnablePresence
            ? grains.GetGrain<IPresenceGrain>(requester.UserId).SyncedAsync(request.SetPresence ?? "online", request.Timeout)
            : Task.CompletedTask;

    public async Task ContributeAsync(SyncContext context, JsonObject response)
    {
        if (!options.Value.EnablePresence) return;
        var userId = context.Requester.UserId;
        // Someone who newly shares a room with the user (the user joined it, or they joined it) brings their current
        // presence, changed in the window or not: the client has never been told it.
        var newlyShared = context.Since is null ? [] : await NewlySharedUsersAsync(context);
        if (!context.StreamMoved(StreamNames.Presence) && newlyShared.Count == 0) return;

        var (since, to) = (UserStreamSync.Since(context, StreamNames.Presence), UserStreamSync.To(context, StreamNames.Presence));
        var changes = new List<PresenceRow>();
        if (context.StreamMoved(StreamNames.Presence))
        {
            // Who shares a room with the user: the rooms' member ids, read without their states where this silo does
            // not hold them, and kept for the long-poll's wake-ups (WakeKeyFamilies).
            var members = await roomStates.GetJoinedMemberSetsAsync(context.JoinedRooms);
            // The presence stream moves for everyone on the server: when this silo still holds the rows after the
            // token, only the users among them who share a room with this one are asked about (in a room of 10,000,
            // one user coming online costs each member's sync a query for that user, not for all 10,000).
            if (context.Since is not null && notifier.TryGetChangedIds(context.Since, StreamNames.Presence, PresenceStore.KeyPrefix, out var changed))
            {
                changed.RemoveWhere(u => u != userId && !members.Any(m => m.Contains(u)));
                // Those rows are in this silo's memory too, unless pushed out: only the rest are read.
                var unknown = new List<string>();
                changes.AddRange(recent.GetChanges(changed, since, to, unknown));
                if (unknown.Count > 0) changes.AddRange(await store.GetChangesAsync(unknown, since, to));
            }
            else
            {
                var users = new HashSet<string>(StringComparer.Ordinal) { userId };
                foreach (var m in members) users.UnionWith(m);
                changes.AddRange(await store.GetChangesAsync(users, since, to));
            }
        }
        newlyShared.ExceptWith(changes.Select(c => c.UserId));
        if (newlyShared.Count > 0)
        {
            var known = await store.GetChangesAsync(newlyShared, 0, to);
            changes.AddRange(known);
            // Someone who was never online has presence too: offline, as Synapse tells it.
            newlyShared.ExceptWith(known.Select(k => k.UserId));
            changes.AddRange(newlyShared.Order(StringComparer.Ordinal).Select(u => new PresenceRow(u, "offline", null, 0, false)));
        }
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        foreach (var p in changes)
        {
            if (!context.Filter.Presence.Matches("m.presence", p.UserId)) continue;
            UserStreamSync.Events(response, "presence").Add(new JsonObject
            {
                ["type"] = "m.presence",
                ["sender"] = p.UserId,
                ["content"] = Content(p, now),
            });
            if (p.UserId != userId) context.HasChanges = true;
        }
    }

    /// <summary>Users the response's timelines show joining a room with the user: every member of a room the user
    /// joined, and whoever joined one of the user's rooms.</summary>
    private async Task<HashSet<string>> NewlySharedUsersAsync(SyncContext context)
    {
        var userId = context.Requester.UserId;
        var result = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (roomId, room) in context.JoinedRoomResponses)
        {
            if (room["timeline"]?["events"] is not JsonArray timeline) continue;
            foreach (var e in timeline.OfType<JsonObject>())
            {
                if (e["type"]?.GetValue<string>() != "m.room.member" || e["content"]?["membership"]?.GetValue<string>() != "join") continue;
                var member = e["state_key"]?.GetValue<string>();
                if (member is null) continue;
                if (member != userId) result.Add(member);
                else result.UnionWith((await rooms.GetCurrentStateAsync(roomId)).JoinedMembers);
            }
        }
        result.Remove(userId);
        return result;
    }

    public static JsonObject Content(PresenceRow p, long now)
    {
        var content = new JsonObject { ["presence"] = p.State, ["currently_active"] = p.CurrentlyActive };
        if (p.LastActiveTs > 0) content["last_active_ago"] = Math.Max(0, now - p.LastActiveTs);
        if (p.StatusMsg is not null) content["status_msg"] = p.StatusMsg;
        return content;
    }

}

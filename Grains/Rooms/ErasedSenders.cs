using System.Text.Json;
using System.Text.Json.Nodes;
using Homeserver.Accounts;
using Homeserver.Caches;
using Homeserver.Matrix;

namespace Homeserver.Rooms;

/// <summary>
/// Users who deactivated with erase, and what that means for their events (as Synapse does it): whoever was in the
/// room when an event was sent keeps seeing it as it was; anyone else (a later member reading shared history, a
/// peeker) gets it pruned by the redaction algorithm. Whether a user is erased is cached per process and dropped
/// through the <c>caches</c> stream when they are erased.
/// </summary>
public sealed class ErasedSenders(AccountRepository accounts, RoomEventStore rooms, CacheRegistry caches)
{
    public const string Cache = "users.erased";

    public async Task<bool> IsErasedAsync(string userId) =>
        await caches.Get<bool>(Cache, 100_000).GetOrLoadAsync(userId, accounts.IsErasedAsync);

    /// <summary>Reads whether each of many users is erased into this silo's cache in one query (a sync from scratch
    /// meets the senders of every room's timeline).</summary>
    public async Task PrefetchAsync(IEnumerable<string> userIds)
    {
        var cache = caches.Get<bool>(Cache, 100_000);
        var missing = userIds.Distinct(StringComparer.Ordinal).Where(u => !cache.TryGet(u, out _)).ToArray();
        if (missing.Length == 0) return;
        var generation = cache.Generation;
        var erased = await accounts.GetErasedAsync(missing);
        foreach (var userId in missing) cache.Store(userId, erased.Contains(userId), generation);
    }

    /// <summary><paramref name="events"/> (of one room) as <paramref name="viewerId"/> may see them: the same list when no
    /// sender is erased, else a copy with the erased senders' events pruned where the viewer was not joined.</summary>
    public async Task<IReadOnlyList<StoredEvent>> ForViewerAsync(string viewerId, string roomId, IReadOnlyList<StoredEvent> events)
    {
        List<StoredEvent>? shown = null;
        string? version = null;
        for (var i = 0; i < events.Count; i++)
        {
            var e = events[i];
            if (e.Sender == viewerId || e.Redacted || !await IsErasedAsync(e.Sender)) continue;
            if (await rooms.GetMembershipAtAsync(roomId, viewerId, e.Topological) == "join") continue;
            version ??= (await rooms.GetRoomAsync(roomId))?.RoomVersion ?? RoomVersions.Default;
            shown ??= [.. events];
            shown[i] = e with { Utf8Json = JsonSerializer.SerializeToUtf8Bytes<JsonNode>(Redaction.Redact(JsonNode.Parse(e.Utf8Json)!.AsObject(), version)) };
        }
        return shown ?? events;
    }
}

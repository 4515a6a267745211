using System.Text.Json.Nodes;
using Homeserver.Streams;
using Homeserver.Sync;

namespace Homeserver.AccountData;

/// <summary>
/// Account data in /sync, for every device of the user: global objects under <c>account_data</c>, room objects under
/// <c>rooms.join.{id}.account_data</c> for rooms the user is joined to. Initial sync: everything; else what changed in
/// (since, to].
/// </summary>
public sealed class AccountDataSyncSection(AccountDataStore store) : ISyncSection
{
    public IEnumerable<string> WakeKeys(SyncContext context) => [context.Requester.UserId];

    public async Task ContributeAsync(SyncContext context, JsonObject response)
    {
        if (!context.StreamMoved(StreamNames.AccountData)) return;
        var userId = context.Requester.UserId;
        var changes = await store.GetChangesAsync(userId,
            UserStreamSync.Since(context, StreamNames.AccountData), UserStreamSync.To(context, StreamNames.AccountData));
        if (changes.Count == 0) return;
        var joined = context.JoinedRooms.ToHashSet(StringComparer.Ordinal);
        foreach (var item in changes)
        {
            if (!context.Filter.AccountData.Matches(item.Type, userId)) continue;
            var ev = new JsonObject { ["type"] = item.Type, ["content"] = UserStreamSync.ParseJson(item.Content) };
            if (item.RoomId.Length == 0) UserStreamSync.Events(response, "account_data").Add(ev);
            else if (joined.Contains(item.RoomId) && context.Filter.IncludesRoom(item.RoomId))
                UserStreamSync.Events(context.JoinedRoom(item.RoomId), "account_data").Add(ev);
            else continue;
            if (context.Since is not null) context.HasChanges = true;
        }
    }
}

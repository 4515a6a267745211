using System.Text.Json.Nodes;
using Homeserver.Streams;

namespace Homeserver.AccountData;

/// <summary>One user's account data writer (see <see cref="IAccountDataGrain"/>). Holds no state: tag changes read the
/// current <c>m.tag</c> from the database, which already holds every earlier change of this grain (appends return after
/// commit).</summary>
public sealed class AccountDataGrain(AccountDataStore store) : Grain, IAccountDataGrain
{
    public const string TagType = "m.tag";

    private string UserId => this.GetPrimaryKeyString();

    public Task<long> SetAsync(string? roomId, string type, string contentJson) =>
        UserStreamSync.AppendAsync(GrainFactory, StreamNames.AccountData, [Row(roomId, type, contentJson)]);

    public async Task<long> SetTagAsync(string roomId, string tag, string tagContentJson)
    {
        var tags = await LoadTagsAsync(roomId);
        tags[tag] = JsonNode.Parse(tagContentJson);
        return await SetAsync(roomId, TagType, new JsonObject { ["tags"] = tags }.ToJsonString());
    }

    public async Task<long> RemoveTagAsync(string roomId, string tag)
    {
        var tags = await LoadTagsAsync(roomId);
        if (!tags.Remove(tag)) return 0;
        return await SetAsync(roomId, TagType, new JsonObject { ["tags"] = tags }.ToJsonString());
    }

    public async Task<long> CopyRoomStateAsync(string oldRoomId, string newRoomId)
    {
        var rows = new List<StreamRow>();
        var tags = await LoadTagsAsync(oldRoomId);
        if (tags.Count > 0 && await store.GetAsync(UserId, newRoomId, TagType) is null)
            rows.Add(Row(newRoomId, TagType, new JsonObject { ["tags"] = tags }.ToJsonString()));
        if (await store.GetAsync(UserId, null, DirectType) is { } direct && JsonNode.Parse(direct) is JsonObject byUser)
        {
            var changed = false;
            foreach (var (_, rooms) in byUser)
                if (rooms is JsonArray list && list.Any(r => Text(r) == oldRoomId) && !list.Any(r => Text(r) == newRoomId))
                {
                    list.Add(newRoomId);
                    changed = true;
                }
            if (changed) rows.Add(Row(null, DirectType, byUser.ToJsonString()));
        }
        return rows.Count == 0 ? 0 : await UserStreamSync.AppendAsync(GrainFactory, StreamNames.AccountData, rows.ToArray());
    }

    private const string DirectType = "m.direct";

    private static string? Text(JsonNode? node) => node is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    private StreamRow Row(string? roomId, string type, string contentJson) =>
        UserStreamSync.Row(AccountDataPersister.KindName, UserId, new AccountDataRow(UserId, roomId ?? "", type, contentJson));

    private async Task<JsonObject> LoadTagsAsync(string roomId)
    {
        var content = await store.GetAsync(UserId, roomId, TagType);
        var tags = content is null ? null : JsonNode.Parse(content)?["tags"] as JsonObject;
        return tags?.DeepClone().AsObject() ?? new JsonObject();
    }
}

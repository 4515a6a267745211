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
        UserStreamSync.AppendAsync(GrainFactory, StreamNames.AccountData,
            [UserStreamSync.Row(AccountDataPersister.KindName, UserId, new AccountDataRow(UserId, roomId ?? "", type, contentJson))]);

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

    private async Task<JsonObject> LoadTagsAsync(string roomId)
    {
        var content = await store.GetAsync(UserId, roomId, TagType);
        var tags = content is null ? null : JsonNode.Parse(content)?["tags"] as JsonObject;
        return tags?.DeepClone().AsObject() ?? new JsonObject();
    }
}

using System.Text.Json.Nodes;
using Homeserver.Caches;
using Homeserver.Streams;

namespace Homeserver.AccountData;

/// <summary>
/// The users a user ignores (spec "Ignoring Users": the <c>m.ignored_user_list</c> account data): their messages and
/// invites are left out of the ignoring user's /sync. Read through a per-silo cache that this handler invalidates
/// before the reader passes any account data change of the user, so /sync does not ask the database every time.
/// </summary>
public sealed class IgnoredUsers(AccountDataStore store, CacheRegistry caches) : IStreamRowHandler
{
    public const string Type = "m.ignored_user_list";
    public const string Cache = "account_data.ignored_users";

    public string Stream => StreamNames.AccountData;

    public void Handle(StreamEntry entry)
    {
        if (entry.Key is not null) caches.Invalidate(Cache, entry.Key);
    }

    public async Task<IReadOnlySet<string>> GetAsync(string userId) =>
        await caches.Get<IReadOnlySet<string>>(Cache).GetOrLoadAsync(userId, async u => Parse(await store.GetAsync(u, null, Type)));

    private static IReadOnlySet<string> Parse(string? content)
    {
        var ignored = new HashSet<string>(StringComparer.Ordinal);
        if (content is not null && JsonNode.Parse(content)?["ignored_users"] is JsonObject users)
            foreach (var (user, _) in users) ignored.Add(user);
        return ignored;
    }
}

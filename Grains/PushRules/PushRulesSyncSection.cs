using System.Text.Json.Nodes;
using Homeserver.AccountData;
using Homeserver.Streams;
using Homeserver.Sync;

namespace Homeserver.PushRules;

/// <summary>
/// Push rules in /sync: the whole ruleset as global account data <c>m.push_rules</c>, always on an initial sync
/// (clients rely on it) and whenever the user's rules changed in (since, to].
/// </summary>
public sealed class PushRulesSyncSection(PushRulesStore store) : ISyncSection
{
    public IEnumerable<string> WakeKeys(SyncContext context) => [context.Requester.UserId];

    public async Task ContributeAsync(SyncContext context, JsonObject response)
    {
        var userId = context.Requester.UserId;
        if (!context.Filter.AccountData.Matches("m.push_rules", userId)) return;
        if (context.Since is not null)
        {
            if (!context.StreamMoved(StreamNames.PushRules)) return;
            var stored = await store.GetAsync(userId);
            if (stored.Position <= UserStreamSync.Since(context, StreamNames.PushRules)
                || stored.Position > UserStreamSync.To(context, StreamNames.PushRules))
                return;
            context.HasChanges = true;
        }
        var ruleset = await store.GetRulesetAsync(userId);
        UserStreamSync.Events(response, "account_data").Add(new JsonObject
        {
            ["type"] = "m.push_rules",
            ["content"] = new JsonObject { ["global"] = ruleset },
        });
    }
}

using Homeserver.Storage;
using System.Text.Json.Nodes;
using Homeserver.AccountData;
using Homeserver.Errors;
using Homeserver.Streams;

namespace Homeserver.PushRules;

/// <summary>
/// One user's push rule writer (see <see cref="IPushRulesGrain"/>). The document is read from the database on
/// activation and replaced in memory only after its append committed, so a rejected change leaves no trace.
/// </summary>
public sealed class PushRulesGrain(PushRulesStore store) : Grain, IPushRulesGrain
{
    private string _userId = "";
    private string? _rules;

    public override async Task OnActivateAsync(CancellationToken ct)
    {
        _userId = this.GetPrimaryKeyString();
        _rules = (await StorageOutage.DuringActivationAsync(() => store.LoadAsync(_userId))).Rules;
    }

    public Task<long> PutRuleAsync(string kind, string ruleId, string ruleJson, string? before, string? after) =>
        ChangeAsync(doc =>
        {
            var body = JsonNode.Parse(ruleJson) as JsonObject ?? throw MatrixException.BadJson("Expected a JSON object");
            doc.Put(kind, ruleId, body, before, after);
        });

    public Task<long> DeleteRuleAsync(string kind, string ruleId) => ChangeAsync(doc => doc.Delete(kind, ruleId));

    public Task<long> SetEnabledAsync(string kind, string ruleId, bool enabled) => ChangeAsync(doc => doc.SetEnabled(kind, ruleId, enabled));

    public Task<long> SetActionsAsync(string kind, string ruleId, string actionsJson) =>
        ChangeAsync(doc => doc.SetActions(kind, ruleId, JsonNode.Parse(actionsJson)));

    public async Task<long> CopyRoomRulesAsync(string fromRoomId, string toRoomId)
    {
        var doc = PushRuleDocument.Parse(_rules);
        return doc.CopyRoomRules(fromRoomId, toRoomId) ? await WriteAsync(doc) : 0;
    }

    private Task<long> ChangeAsync(Action<PushRuleDocument> change)
    {
        var doc = PushRuleDocument.Parse(_rules);
        change(doc);
        return WriteAsync(doc);
    }

    private async Task<long> WriteAsync(PushRuleDocument doc)
    {
        var rules = doc.Serialize();
        var position = await UserStreamSync.AppendAsync(GrainFactory, StreamNames.PushRules,
            [UserStreamSync.Row(PushRulesPersister.KindName, _userId, new PushRulesRow(_userId, rules))]);
        _rules = rules;
        return position;
    }
}

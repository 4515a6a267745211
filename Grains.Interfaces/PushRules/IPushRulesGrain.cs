namespace Homeserver.PushRules;

/// <summary>
/// The writer of one user's push rules: serialises the user's changes (ordering with <c>before</c>/<c>after</c> is a
/// read-modify-write) and appends the user's whole rule document to the <c>push_rules</c> stream. Key: the user id.
/// Every method returns the <c>push_rules/0</c> position to wait for; it throws <c>MatrixException</c> for an unknown
/// rule (404) or an invalid one (400).
/// </summary>
public interface IPushRulesGrain : IGrainWithStringKey
{
    /// <summary>Adds or replaces a user rule. <paramref name="ruleJson"/> is the PUT body (actions, conditions or
    /// pattern); <paramref name="before"/>/<paramref name="after"/> name user rules of the same kind.</summary>
    Task<long> PutRuleAsync(string kind, string ruleId, string ruleJson, string? before, string? after);

    Task<long> DeleteRuleAsync(string kind, string ruleId);

    /// <summary>Works on user rules and server-default rules alike.</summary>
    Task<long> SetEnabledAsync(string kind, string ruleId, bool enabled);

    /// <summary><paramref name="actionsJson"/> is a JSON array of actions.</summary>
    Task<long> SetActionsAsync(string kind, string ruleId, string actionsJson);

    /// <summary>Copies the user's rules that name <paramref name="fromRoomId"/> (a room rule, or a condition on its id) to
    /// <paramref name="toRoomId"/>, its successor after an upgrade, as Synapse does on the join of an upgraded room. Rules
    /// already there are kept. Returns 0 when nothing was copied.</summary>
    Task<long> CopyRoomRulesAsync(string fromRoomId, string toRoomId);
}

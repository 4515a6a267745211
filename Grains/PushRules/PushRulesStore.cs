using System.Text.Json.Nodes;
using Homeserver.AccountData;
using Homeserver.Caches;
using Homeserver.Streams;
using Npgsql;

namespace Homeserver.PushRules;

/// <summary>A user's stored rule document and the <c>push_rules</c> position of its last change (0: never changed).</summary>
public sealed record StoredPushRules(string? Rules, long Position);

/// <summary>The stream row: the user's whole new document.</summary>
public sealed record PushRulesRow(string UserId, string Rules);

/// <summary>
/// The read side of push rules on one silo: the user's document through a per-silo cache that
/// <see cref="PushRulesCacheHandler"/> invalidates before this silo's reader passes a change.
/// </summary>
public sealed class PushRulesStore(NpgsqlDataSource db, CacheRegistry caches)
{
    public const string Cache = "push_rules.by_user";

    public async Task<StoredPushRules> GetAsync(string userId) =>
        await caches.Get<StoredPushRules>(Cache).GetOrLoadAsync(userId, LoadAsync);

    /// <summary>Straight from the database, for the writer grain (which must not trust a cache).</summary>
    public async Task<StoredPushRules> LoadAsync(string userId)
    {
        await using var cmd = db.CreateCommand("SELECT rules, stream_position FROM push_rules WHERE user_id = $1");
        cmd.Parameters.AddWithValue(userId);
        await using var reader = await cmd.ExecuteReaderAsync();
        return await reader.ReadAsync() ? new StoredPushRules(reader.GetString(0), reader.GetInt64(1)) : new StoredPushRules(null, 0);
    }

    /// <summary>The ruleset clients see (the value of <c>global</c>).</summary>
    public async Task<JsonObject> GetRulesetAsync(string userId) =>
        PushRuleDocument.Parse((await GetAsync(userId)).Rules).Merge(userId);

    /// <summary>The same ruleset compiled for evaluation, cached beside the document and dropped with it.</summary>
    public async Task<CompiledPushRules> GetCompiledAsync(string userId) =>
        await caches.Get<CompiledPushRules>(CompiledCache).GetOrLoadAsync(userId, async id => CompiledPushRules.Compile(id, await GetRulesetAsync(id)));

    public const string CompiledCache = "push_rules.compiled_by_user";
}

public sealed class PushRulesPersister : IStreamRowPersister
{
    public const string KindName = "push_rules.set";
    public string Kind => KindName;

    public void AddCommands(NpgsqlBatch batch, StreamEntry entry)
    {
        var row = UserStreamSync.Read<PushRulesRow>(entry);
        batch.BatchCommands.Add(new NpgsqlBatchCommand(
            """
            INSERT INTO push_rules (user_id, rules, stream_position) VALUES ($1, $2, $3)
            ON CONFLICT (user_id) DO UPDATE SET rules = EXCLUDED.rules, stream_position = EXCLUDED.stream_position
            """)
        {
            Parameters = { new() { Value = row.UserId }, new() { Value = row.Rules }, new() { Value = entry.Position } }
        });
    }
}

public sealed class PushRulesCacheHandler(CacheRegistry caches) : IStreamRowHandler
{
    public string Stream => StreamNames.PushRules;

    public void Handle(StreamEntry entry)
    {
        if (entry.Key is null) return;
        caches.Invalidate(PushRulesStore.Cache, entry.Key);
        caches.Invalidate(PushRulesStore.CompiledCache, entry.Key);
    }
}

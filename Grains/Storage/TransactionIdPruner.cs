using Homeserver.Streams;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Homeserver.Storage;

/// <summary>
/// Deletes the transaction ids of one table (<c>to_device_txns</c>) older than
/// <see cref="HomeserverOptions.TransactionIdLifetime"/>, in bounded batches, as the housekeeping of the stream whose
/// writer records them. Synapse prunes its transaction ids the same way (every five minutes, after 24 hours). A room
/// event's transaction id is the event row's own columns (migration 0028) and lives as long as the event.
/// </summary>
public sealed class TransactionIdPruner(string stream, string table, TimeSpan lifetime, NpgsqlDataSource db, ILogger logger)
    : IStreamHousekeeper
{
    private const int BatchRows = 10_000;

    public string Stream => stream;
    public TimeSpan Period => TimeSpan.FromMinutes(5);

    public async Task RunAsync(CancellationToken ct)
    {
        long total = 0;
        for (int deleted = BatchRows; deleted == BatchRows; total += deleted)
        {
            await using var cmd = db.CreateCommand(
                $"DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table} WHERE created_at < now() - $1::interval LIMIT {BatchRows}))");
            cmd.Parameters.AddWithValue(lifetime);
            deleted = await cmd.ExecuteNonQueryAsync(ct);
        }
        if (total > 0) logger.LogInformation("Pruned {Count} expired transaction ids from {Table}", total, table);
    }
}

public static class TransactionIdPrunerRegistration
{
    public static IServiceCollection AddTransactionIdPruner(this IServiceCollection services, string stream, string table) =>
        services.AddSingleton<IStreamHousekeeper>(sp => new TransactionIdPruner(stream, table,
            sp.GetRequiredService<IOptions<HomeserverOptions>>().Value.TransactionIdLifetime,
            sp.GetRequiredService<NpgsqlDataSource>(), sp.GetRequiredService<ILogger<TransactionIdPruner>>()));
}

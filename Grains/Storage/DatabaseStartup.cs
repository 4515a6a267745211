using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Homeserver.Storage;

/// <summary>
/// Registered before the silo so it starts first and stops last: starts the private PostgreSQL (when no connection
/// string is configured), waits for the database, and applies migrations.
/// </summary>
public sealed class DatabaseStartup(NpgsqlDataSource db, ILogger<DatabaseStartup> logger, EmbeddedPostgres? embedded = null) : IHostedService
{
    public async Task StartAsync(CancellationToken ct)
    {
        if (embedded is not null) await embedded.StartAsync(ct);
        await WaitForDatabaseAsync(ct);
        await MigrationRunner.ApplyAsync(db, logger, ct);
    }

    public async Task StopAsync(CancellationToken ct)
    {
        if (embedded is not null) await embedded.StopAsync();
    }

    private async Task WaitForDatabaseAsync(CancellationToken ct)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            try
            {
                await using var conn = await db.OpenConnectionAsync(ct);
                return;
            }
            catch (NpgsqlException e) when (DateTime.UtcNow < deadline)
            {
                logger.LogWarning("Waiting for PostgreSQL: {Message}", e.Message);
                await Task.Delay(500, ct);
            }
        }
    }
}

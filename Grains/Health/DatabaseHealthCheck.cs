using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;

namespace Homeserver.Health;

/// <summary>PostgreSQL answers a query within <see cref="Timeout"/> (through the shared pool, as every request would).</summary>
public sealed class DatabaseHealthCheck(NpgsqlDataSource db) : IHealthCheck
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(2);

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken ct = default)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(Timeout);
        try
        {
            await using var cmd = db.CreateCommand("SELECT 1");
            await cmd.ExecuteScalarAsync(timeout.Token);
            return HealthCheckResult.Healthy();
        }
        catch (Exception e) when (e is NpgsqlException or OperationCanceledException or TimeoutException)
        {
            return HealthCheckResult.Unhealthy(timeout.IsCancellationRequested && !ct.IsCancellationRequested
                ? $"PostgreSQL did not answer within {Timeout.TotalSeconds:0} s"
                : $"PostgreSQL is unavailable: {e.Message}");
        }
    }
}

using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Homeserver.Accounts;

/// <summary>
/// Writes this process's <see cref="ClientIpBatch"/> to <c>client_ips</c> every <c>Homeserver:ClientIpFlushPeriod</c>
/// (sooner when the batch fills up) in one statement, and once more on shutdown. Hosted services stop in reverse
/// order of start, so the HTTP server has stopped taking requests and the database is still there when that runs.
/// </summary>
public sealed class ClientIpFlusher(ClientIpBatch batch, NpgsqlDataSource db, IOptions<HomeserverOptions> options,
    ILogger<ClientIpFlusher> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var period = options.Value.ClientIpFlushPeriod;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await batch.WaitUntilFlushDueAsync(period, stoppingToken);
                await batch.FlushAsync(WriteAsync);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                logger.LogInformation("Client IPs not written, trying again in {Period}: {Error}", period, e.Message);
                // A full batch asks for a flush at every request: without this pause an outage would be a busy loop.
                try { await Task.Delay(period, stoppingToken); }
                catch (OperationCanceledException) { return; }
            }
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (cancellationToken.IsCancellationRequested) return; // a forced stop: what waits is lost, as with a crash
        try { await batch.FlushAsync(WriteAsync).WaitAsync(cancellationToken); }
        catch (Exception e) { logger.LogWarning("Client IPs not written at shutdown: {Error}", e.Message); }
    }

    /// <summary>
    /// One upsert for the whole batch. Rows of devices deleted meanwhile are left out (a pending sighting must not
    /// bring back the rows the deletion removed). Rows go in one fixed (ordinal) order, so two processes flushing
    /// the same keys, a client behind a load balancer, lock them in the same order and cannot deadlock.
    /// </summary>
    private async Task WriteAsync(IReadOnlyList<ClientIpBatch.Entry> entries)
    {
        var sorted = entries.OrderBy(e => e.UserId, StringComparer.Ordinal).ThenBy(e => e.DeviceId, StringComparer.Ordinal)
            .ThenBy(e => e.Ip, StringComparer.Ordinal).ThenBy(e => e.UserAgent, StringComparer.Ordinal).ToList();
        await using var cmd = db.CreateCommand(
            """
            INSERT INTO client_ips (user_id, device_id, ip, user_agent, last_seen)
            SELECT u.user_id, u.device_id, u.ip, u.user_agent, u.last_seen
              FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])
                   WITH ORDINALITY AS u(user_id, device_id, ip, user_agent, last_seen, n)
             WHERE EXISTS (SELECT 1 FROM devices d WHERE d.user_id = u.user_id AND d.device_id = u.device_id)
             ORDER BY u.n
            ON CONFLICT (user_id, device_id, ip, user_agent)
            DO UPDATE SET last_seen = GREATEST(client_ips.last_seen, EXCLUDED.last_seen)
            """);
        cmd.Parameters.AddWithValue(sorted.Select(e => e.UserId).ToArray());
        cmd.Parameters.AddWithValue(sorted.Select(e => e.DeviceId).ToArray());
        cmd.Parameters.AddWithValue(sorted.Select(e => e.Ip).ToArray());
        cmd.Parameters.AddWithValue(sorted.Select(e => e.UserAgent).ToArray());
        cmd.Parameters.AddWithValue(sorted.Select(e => e.LastSeen).ToArray());
        await cmd.ExecuteNonQueryAsync();
    }
}

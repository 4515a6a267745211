using Homeserver.Streams;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Homeserver.Hosting;

/// <summary>A process that serves the Client-Server API, as it last reported itself.</summary>
/// <param name="Role"><c>combined</c> (with a silo of its own) or <c>front_end</c> (an Orleans client).</param>
/// <param name="Silo">The silo it hosts, for a combined process.</param>
public sealed record FrontEndEntry(string Name, string Role, string? Silo, string Host, int ProcessId, string[] Urls,
    DateTime StartedAt, DateTime SeenAt)
{
    /// <summary>Whether the process reported itself recently enough to be taken as running.</summary>
    public bool Up(DateTime now) => now - SeenAt <= FrontEndRegistry.MissingAfter;
}

/// <summary>
/// The cluster's HTTP front ends (table <c>front_ends</c>, migration 0022). A front end without a silo is an Orleans
/// client, and Orleans' membership lists only silos, so each process that serves HTTP writes its own row once it
/// listens and refreshes it every <see cref="HeartbeatPeriod"/>; at a graceful stop it deletes it. A process that
/// dies leaves a row that stops moving: listed as missing after <see cref="MissingAfter"/>, deleted after a day.
/// </summary>
public sealed class FrontEndRegistry(
    NpgsqlDataSource db,
    ReaderHost host,
    IServer server,
    IHostApplicationLifetime lifetime,
    ILogger<FrontEndRegistry> logger) : BackgroundService
{
    public static readonly TimeSpan HeartbeatPeriod = TimeSpan.FromSeconds(10);
    public static readonly TimeSpan MissingAfter = 3 * HeartbeatPeriod;
    private static readonly TimeSpan ForgottenAfter = TimeSpan.FromDays(1);

    private readonly DateTime _startedAt = DateTime.UtcNow;

    /// <summary>Every front end with a row, newest first.</summary>
    public async Task<IReadOnlyList<FrontEndEntry>> ListAsync()
    {
        await using var cmd = db.CreateCommand(
            "SELECT name, role, silo, host, process_id, urls, started_at, seen_at FROM front_ends ORDER BY started_at DESC, name");
        await using var reader = await cmd.ExecuteReaderAsync();
        var entries = new List<FrontEndEntry>();
        while (await reader.ReadAsync())
            entries.Add(new FrontEndEntry(reader.GetString(0), reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2),
                reader.GetString(3), reader.GetInt32(4), reader.GetFieldValue<string[]>(5), reader.GetDateTime(6), reader.GetDateTime(7)));
        return entries;
    }

    protected override async Task ExecuteAsync(CancellationToken ct)
    {
        // The listening addresses are known once the server has started.
        var started = new TaskCompletionSource();
        using (lifetime.ApplicationStarted.Register(() => started.TrySetResult()))
        {
            try { await started.Task.WaitAsync(ct); }
            catch (OperationCanceledException) { return; }
        }
        using var timer = new PeriodicTimer(HeartbeatPeriod);
        do
        {
            try { await ReportAsync(ct); }
            catch (Exception e) when (e is NpgsqlException or TimeoutException)
            {
                logger.LogWarning("Could not report this front end in front_ends: {Message}", e.Message);
            }
        } while (await WaitAsync(timer, ct));
    }

    private static async Task<bool> WaitAsync(PeriodicTimer timer, CancellationToken ct)
    {
        try { return await timer.WaitForNextTickAsync(ct); }
        catch (OperationCanceledException) { return false; }
    }

    private async Task ReportAsync(CancellationToken ct)
    {
        var urls = server.Features.Get<IServerAddressesFeature>()?.Addresses.ToArray() ?? [];
        await using var batch = db.CreateBatch();
        batch.BatchCommands.Add(new NpgsqlBatchCommand(
            """
            INSERT INTO front_ends (name, role, silo, host, process_id, urls, started_at, seen_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, now())
            ON CONFLICT (name) DO UPDATE SET urls = EXCLUDED.urls, seen_at = now()
            """)
        {
            Parameters =
            {
                new() { Value = host.Name }, new() { Value = host.Silo is null ? "front_end" : "combined" },
                new() { Value = (object?)host.Silo?.ToString() ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text },
                new() { Value = Environment.MachineName }, new() { Value = Environment.ProcessId },
                new() { Value = urls }, new() { Value = _startedAt },
            }
        });
        batch.BatchCommands.Add(new NpgsqlBatchCommand("DELETE FROM front_ends WHERE seen_at < now() - $1::interval")
        {
            Parameters = { new() { Value = ForgottenAfter } }
        });
        await batch.ExecuteNonQueryAsync(ct);
    }

    public override async Task StopAsync(CancellationToken ct)
    {
        await base.StopAsync(ct);
        // Bounded: a database that is down must not hold up the shutdown (the row then goes missing by itself).
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(2));
        try
        {
            await using var cmd = db.CreateCommand("DELETE FROM front_ends WHERE name = $1");
            cmd.Parameters.AddWithValue(host.Name);
            await cmd.ExecuteNonQueryAsync(timeout.Token);
        }
        catch (Exception e) when (e is NpgsqlException or OperationCanceledException or TimeoutException)
        {
            logger.LogDebug("Could not remove this front end from front_ends: {Message}", e.Message);
        }
    }
}

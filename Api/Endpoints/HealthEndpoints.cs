using Npgsql;

namespace Homeserver.Api.Endpoints;

/// <summary>Operator probes: <c>/health/live</c> (the process answers) and <c>/health/ready</c> (silo and database up).</summary>
public static class HealthEndpoints
{
    public static IEndpointRouteBuilder MapHealthEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapGet("/health/live", () => Results.Json(new { status = "live" }));
        app.MapGet("/health/ready", async (ReadinessProbe probe, CancellationToken ct) =>
            await probe.IsReadyAsync(ct)
                ? Results.Json(new { status = "ready" })
                : Results.Json(new { status = "starting" }, statusCode: 503));
        return app;
    }
}

/// <summary>Ready once the host (and so the silo) has started and the database answers.</summary>
public sealed class ReadinessProbe(IHostApplicationLifetime lifetime, NpgsqlDataSource db)
{
    public async Task<bool> IsReadyAsync(CancellationToken ct)
    {
        if (!lifetime.ApplicationStarted.IsCancellationRequested || lifetime.ApplicationStopping.IsCancellationRequested)
            return false;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(2));
            await using var cmd = db.CreateCommand("SELECT 1");
            await cmd.ExecuteScalarAsync(timeout.Token);
            return true;
        }
        catch (Exception e) when (e is NpgsqlException or OperationCanceledException or TimeoutException)
        {
            return false;
        }
    }
}

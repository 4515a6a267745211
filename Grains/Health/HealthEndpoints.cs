using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Homeserver.Health;

/// <summary>
/// Operator probes (ASP.NET Core's health checks, registered by <see cref="HomeserverHealthChecks"/>):
/// <c>/health/live</c> is 200 while the process answers; <c>/health/ready</c> is 200 when the database answers, this
/// process is in the cluster and its stream reader has caught up, else 503. Both answer a JSON body with each check's
/// status, for operators and orchestrators (Matrix clients never call them). Served by every process: on the API port
/// of an <c>Api</c> process, and beside <c>/metrics</c> on a <c>Silo</c> process's metrics port.
/// </summary>
public static class HealthEndpoints
{
    public static IEndpointRouteBuilder MapHealthEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = _ => false, ResponseWriter = WriteJsonAsync });
        app.MapHealthChecks("/health/ready", new HealthCheckOptions
        {
            Predicate = check => check.Tags.Contains(HomeserverHealthChecks.ReadyTag),
            ResponseWriter = WriteJsonAsync,
        });
        return app;
    }

    /// <summary><c>{"status": "healthy", "checks": {"database": {"status", "description", "duration_ms", "data"}}}</c>.</summary>
    private static Task WriteJsonAsync(HttpContext context, HealthReport report)
    {
        var checks = new JsonObject();
        foreach (var (name, entry) in report.Entries)
        {
            var check = new JsonObject
            {
                ["status"] = Name(entry.Status),
                ["duration_ms"] = Math.Round(entry.Duration.TotalMilliseconds, 1),
            };
            if (entry.Description is { } description) check["description"] = description;
            if (entry.Data.Count > 0)
                check["data"] = new JsonObject(entry.Data.Select(d => KeyValuePair.Create(d.Key, d.Value switch
                {
                    int i => JsonValue.Create(i),
                    long l => JsonValue.Create(l),
                    _ => (JsonNode?)JsonValue.Create(d.Value?.ToString()),
                })));
            checks[name] = check;
        }
        context.Response.Headers.CacheControl = "no-store";
        return context.Response.WriteAsJsonAsync(new JsonObject { ["status"] = Name(report.Status), ["checks"] = checks });
    }

    private static string Name(HealthStatus status) => status switch
    {
        HealthStatus.Healthy => "healthy",
        HealthStatus.Degraded => "degraded",
        _ => "unhealthy",
    };
}

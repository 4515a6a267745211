using Homeserver.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;

namespace Homeserver.Observability;

/// <summary>
/// Logs and metrics of one process (an <c>Api</c> or a <c>Silo</c>): the log format (<c>Homeserver:Logging</c>), and
/// OpenTelemetry metrics exported for Prometheus (<c>Homeserver:Metrics</c>), served by <see cref="MapHomeserverMetrics"/>.
/// </summary>
public static class ObservabilityHostingExtensions
{
    /// <summary>The name OpenTelemetry's listener registers under in <c>Microsoft.Extensions.Diagnostics</c>' metrics.</summary>
    private const string OpenTelemetryListener = "OpenTelemetry";

    /// <summary>
    /// Meters that each DI container creates through its own <see cref="System.Diagnostics.Metrics.IMeterFactory"/>:
    /// ours, Orleans' (<c>OrleansInstruments</c>) and ASP.NET Core's but its hosting meter (<c>Microsoft.AspNetCore.Hosting</c>):
    /// recording its request duration and active requests cost the send benchmark 7 % of its messages/s, so the request
    /// middleware records <c>http.server.request.duration</c> in our meter instead, at no measurable cost
    /// (<see cref="HomeserverMetrics.RequestServed"/>, docs/benchmarks.md). They are enabled for this container's factory only
    /// (<see cref="MeterScope.Local"/>): OpenTelemetry's own <c>AddMeter</c> matches meters by name across the whole
    /// process, so several silos in one process (the tests) would each export the others' series, summed into theirs.
    /// ASP.NET Core's meters are enabled here rather than through <c>AddAspNetCoreInstrumentation</c> for that reason
    /// (on .NET 8 and later that instrumentation is exactly an <c>AddMeter</c> of these names).
    /// </summary>
    private static readonly string[] ContainerMeters =
    [
        HomeserverMetrics.MeterName,
        "Microsoft.Orleans",
        "Microsoft.AspNetCore.Server.Kestrel",
        "Microsoft.AspNetCore.Routing",
        "Microsoft.AspNetCore.Diagnostics",
        "Microsoft.AspNetCore.RateLimiting",
    ];

    /// <summary>The names <c>Homeserver:Metrics:ExcludeMeters</c> knows the two process-wide meters by.</summary>
    private const string RuntimeMeter = "runtime", NpgsqlMeter = "Npgsql";

    /// <summary>
    /// Orleans instruments recorded through the SDK on every message sent or received (a histogram of its size, with
    /// three tags): they cost the send path more than everything else together (the issue 11 benchmark in
    /// docs/benchmarks.md), and the message counts stay exported through Orleans' own counters.
    /// </summary>
    private static readonly string[] PerMessageOrleansInstruments =
        ["orleans-messaging-sent-messages-size", "orleans-messaging-received-messages-size"];

    public static MetricsOptions ReadMetricsOptions(IConfiguration configuration) =>
        configuration.GetSection($"{HomeserverOptions.Section}:Metrics").Get<MetricsOptions>() ?? new MetricsOptions();

    /// <summary>
    /// The log format and, unless <c>Homeserver:Metrics:Enabled</c> is false, the metrics pipeline: this container's
    /// meters (above), the process's .NET runtime and Npgsql pool meters (one runtime and one pool per process, so in a
    /// process with several silos each silo's scrape shows the same process-wide values), and the Prometheus exporter.
    /// </summary>
    /// <param name="instance">What tells this process apart from the others of the cluster (its silo address, or the
    /// front end's host and process): the <c>service.instance.id</c> label of every series.</param>
    /// <returns>The metrics options read, for the host to decide where <c>/metrics</c> listens.</returns>
    public static MetricsOptions AddHomeserverObservability(this IHostApplicationBuilder builder, string instance)
    {
        builder.AddHomeserverLogFormat();
        var metrics = ReadMetricsOptions(builder.Configuration);
        if (!metrics.Enabled) return metrics;

        var excluded = new HashSet<string>(metrics.ExcludeMeters, StringComparer.OrdinalIgnoreCase);
        builder.Services.AddHostedService<InstrumentsStartup>();
        builder.Services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService("homeserver", serviceInstanceId: instance))
            .WithMetrics(m =>
            {
                if (!excluded.Contains(RuntimeMeter)) m.AddRuntimeInstrumentation();
                if (!excluded.Contains(NpgsqlMeter)) m.AddNpgsqlInstrumentation();
                m.AddPrometheusExporter(o => o.ResourceConstantLabels = key => key == "service.instance.id");
                // OpenTelemetry allocates every instrument's series table at its limit up front (2,000 by default, 72
                // bytes a series): for the few hundred instruments of a silo that was tens of MB holding a handful of
                // series each. Series past the limit are folded into one marked otel.metric.overflow.
                var limit = metrics.CardinalityLimit;
                m.AddView(_ => new MetricStreamConfiguration { CardinalityLimit = limit });
            });
        foreach (var meter in ContainerMeters.Where(m => !excluded.Contains(m)))
            builder.Metrics.EnableMetrics(meter, instrumentName: null, listenerName: OpenTelemetryListener, scopes: MeterScope.Local);
        foreach (var instrument in PerMessageOrleansInstruments)
            builder.Metrics.DisableMetrics("Microsoft.Orleans", instrument, OpenTelemetryListener, MeterScope.Local);
        return metrics;
    }

    /// <summary>The URL a process serves <c>/metrics</c> on when it has a metrics port of its own.</summary>
    public static string MetricsUrl(IConfiguration configuration, int port)
    {
        var address = configuration[$"{HomeserverOptions.Section}:Cluster:{nameof(ClusterOptions.AdvertisedAddress)}"] ?? new ClusterOptions().AdvertisedAddress;
        return $"http://{address}:{port}";
    }

    /// <summary><c>GET /metrics</c> in Prometheus' text format (or OpenMetrics, when asked for), when metrics are on;
    /// with <c>Homeserver:Metrics:Port</c> set, only on that port. Otherwise nothing is mapped and the fallback route
    /// answers 404 <c>M_UNRECOGNIZED</c>.</summary>
    public static void MapHomeserverMetrics(this IEndpointRouteBuilder app)
    {
        var options = ReadMetricsOptions(app.ServiceProvider.GetRequiredService<IConfiguration>());
        if (!options.Enabled) return;
        var endpoint = app.MapPrometheusScrapingEndpoint();
        if (options.Port is { } port) endpoint.RequireHost($"*:{port}");
    }

    /// <summary>The <c>service.instance.id</c> of this process: a silo's advertised address and silo port (what it is
    /// known by in the cluster), or a front end's host name and process id.</summary>
    public static string InstanceOf(IConfiguration configuration, ProcessRole role)
    {
        if (role == ProcessRole.FrontEnd) return $"{System.Net.Dns.GetHostName()}/{Environment.ProcessId}";
        var cluster = configuration.GetSection($"{HomeserverOptions.Section}:Cluster").Get<ClusterOptions>() ?? new ClusterOptions();
        return $"{cluster.AdvertisedAddress}:{cluster.SiloPort}";
    }

    /// <summary>
    /// <c>Homeserver:Logging:Format</c>: <c>text</c> (the console's usual lines) or <c>json</c> (the built-in JSON
    /// console formatter: one object a line with the message, its template's named values and the category).
    /// Whatever the format, ASP.NET Core's own per-request lines stay off below Warning: they print the raw URL,
    /// query string and all, and clients may send their access token there (<c>?access_token=</c>); the request log
    /// of the front end writes the route template instead.
    /// </summary>
    public static IHostApplicationBuilder AddHomeserverLogFormat(this IHostApplicationBuilder builder)
    {
        var format = builder.Configuration.GetSection(HomeserverOptions.Section).GetSection("Logging").Get<LoggingOptions>()?.Format ?? "text";
        if (string.Equals(format, "json", StringComparison.OrdinalIgnoreCase))
        {
            builder.Logging.AddJsonConsole(o =>
            {
                o.UseUtcTimestamp = true;
                o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
            });
        }
        else if (!string.Equals(format, "text", StringComparison.OrdinalIgnoreCase))
        {
            throw new HomeserverConfigurationException($"Homeserver:Logging:Format is '{format}': say text or json.");
        }
        builder.Logging.AddFilter("Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.Warning);
        return builder;
    }

    /// <summary>Creates the homeserver's instruments at start-up, so that a scrape finds the observable ones (reader,
    /// caches, waiters) before anything else has asked for them.</summary>
    private sealed class InstrumentsStartup(HomeserverMetrics metrics) : IHostedService
    {
        public Task StartAsync(CancellationToken ct)
        {
            GC.KeepAlive(metrics);
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken ct) => Task.CompletedTask;
    }
}

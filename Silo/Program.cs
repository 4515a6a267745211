using Homeserver;
using Homeserver.Health;
using Homeserver.Hosting;
using Homeserver.Observability;
using Homeserver.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;

// A silo without a Client-Server API: joins the cluster configured under Homeserver:Cluster and hosts grains and a
// stream reader. Its only HTTP is GET /metrics (Homeserver:Metrics) and the health probes (/health/live, /health/ready),
// served by a minimal Kestrel host: the same exporter and endpoints as the API processes', rather than the exporter's
// HttpListener, which would be a second implementation to configure and test. With metrics off it is a plain host that
// listens on nothing.
try
{
    var builder = WebApplication.CreateSlimBuilder(args);
    var metrics = ObservabilityHostingExtensions.ReadMetricsOptions(builder.Configuration);
    if (!metrics.Enabled)
    {
        // A web host always listens somewhere (localhost:5000 when given no URL): this one must not.
        var host = Host.CreateApplicationBuilder(args);
        host.AddHomeserverSilo();
        host.AddHomeserverObservability(ObservabilityHostingExtensions.InstanceOf(host.Configuration, ProcessRole.Combined));
        await host.Build().RunAsync();
        return 0;
    }
    builder.AddHomeserverSilo();
    builder.AddHomeserverObservability(ObservabilityHostingExtensions.InstanceOf(builder.Configuration, ProcessRole.Combined));
    builder.Services.AddHomeserverHealthChecks();
    builder.WebHost.UseUrls(ObservabilityHostingExtensions.MetricsUrl(builder.Configuration, metrics.Port ?? MetricsOptions.DefaultSiloPort));
    var app = builder.Build();
    app.MapHomeserverMetrics();
    app.MapHealthEndpoints();
    await app.RunAsync();
    return 0;
}
catch (Exception e) when (e is EmbeddedPostgres.NotAvailableException or HomeserverConfigurationException)
{
    Console.Error.WriteLine($"homeserver silo: {e.Message}");
    return 2;
}

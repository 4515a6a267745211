using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Homeserver.Hosting;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.Operator;

/// <summary>
/// <c>GET /metrics</c> (issue 11): Prometheus text from the OpenTelemetry exporter on every silo's API port, whose
/// series move on a silo other than the one a message was sent through (its reader applies the row, its parked /sync
/// wakes), HTTP series by route template, and each silo showing its own series only, though both share a process.
/// </summary>
public sealed class MetricsTests(TwoSiloCluster fixture) : IClassFixture<TwoSiloCluster>
{
    private const string SendRoute = "/_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}";
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(15);

    private static double Sum(IEnumerable<PrometheusSample> samples, string name, Func<PrometheusSample, bool>? where = null) =>
        samples.Where(s => s.Name == name && (where is null || where(s))).Sum(s => s.Value);

    private static bool IsEvents(PrometheusSample s) => s["stream"] == "events";

    /// <summary>Scrapes until <paramref name="done"/> holds (the exporter caches a scrape for a moment, and the reader
    /// applies asynchronously).</summary>
    private static async Task<IReadOnlyList<PrometheusSample>> ScrapeUntilAsync(TestSilo silo, Func<IReadOnlyList<PrometheusSample>, bool> done)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var samples = await PrometheusText.ScrapeAsync(silo.Http);
            if (done(samples) || clock.Elapsed > Patience) return samples;
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task A_send_through_one_silo_moves_the_reader_sync_and_http_series_of_the_other()
    {
        var alice = await fixture.UserAsync("metrics-a", fixture.A);
        var bob = await fixture.UserAsync("metrics-b", fixture.B);
        var room = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        await bob.JoinAsync(room);
        await fixture.SettleAsync();
        var since = (await bob.GetAsync("/_matrix/client/v3/sync?timeout=0")).EnsureSuccess()["next_batch"].GetValue<string>();

        var before = await PrometheusText.ScrapeAsync(fixture.B.Http);
        var writersBefore = Sum(await PrometheusText.ScrapeAsync(fixture.A.Http), "homeserver_stream_writer_appends_total", IsEvents)
                            + Sum(before, "homeserver_stream_writer_appends_total", IsEvents);

        // Bob's long-poll parks on silo B; then Alice sends through silo A.
        var poll = bob.GetAsync($"/_matrix/client/v3/sync?since={Uri.EscapeDataString(since)}&timeout=10000");
        await ScrapeUntilAsync(fixture.B, s => Sum(s, "homeserver_stream_waiters") >= 1);
        await alice.SendTextAsync(room, "counted");
        var woken = (await poll).EnsureSuccess();
        Assert.NotNull(woken.Body?["rooms"]?["join"]?[room]);

        var after = await ScrapeUntilAsync(fixture.B, s =>
            Sum(s, "homeserver_stream_reader_applied_total", IsEvents) > Sum(before, "homeserver_stream_reader_applied_total", IsEvents)
            && Sum(s, "homeserver_sync_wakeup_duration_seconds_count") > Sum(before, "homeserver_sync_wakeup_duration_seconds_count"));

        // Silo B's reader applied the row: its position and row count rose, and it is not behind.
        Assert.True(Sum(after, "homeserver_stream_reader_position", IsEvents) > Sum(before, "homeserver_stream_reader_position", IsEvents));
        Assert.True(Sum(after, "homeserver_stream_reader_applied_total", IsEvents) > Sum(before, "homeserver_stream_reader_applied_total", IsEvents));
        Assert.Contains(after, s => s.Name == "homeserver_stream_reader_lag" && IsEvents(s) && s["writer"] is not null);
        Assert.Contains(after, s => s.Name == "homeserver_stream_reader_lag_duration_seconds");
        Assert.Contains(after, s => s.Name == "homeserver_stream_reader_gap_catch_ups_total");
        Assert.Contains(after, s => s.Name == "homeserver_stream_reader_backstop_hits_total");
        // Its parked /sync was woken, and how long the answer took after the wake-up is recorded.
        Assert.True(Sum(after, "homeserver_sync_wakeups_total") > Sum(before, "homeserver_sync_wakeups_total"));
        Assert.True(Sum(after, "homeserver_sync_wakeup_duration_seconds_count") > Sum(before, "homeserver_sync_wakeup_duration_seconds_count"));

        // HTTP by route template, method and status: the long-poll on B, the send on A; B's scrape has no send, as the
        // send went through A only (each silo exports its own series although both run in this process).
        Assert.Contains(after, s => s.Name == "http_server_request_duration_seconds_count" && s["http_route"] == "/_matrix/client/v3/sync"
                                    && s["http_request_method"] == "GET" && s["http_response_status_code"] == "200" && s.Value >= 1);
        Assert.Contains(after, s => s.Name == "http_server_request_duration_seconds_bucket" && s["http_route"] == "/_matrix/client/v3/sync" && s["le"] == "+Inf");
        Assert.DoesNotContain(after, s => s["http_route"] == SendRoute);
        var onA = await ScrapeUntilAsync(fixture.A, s => s.Any(x => x["http_route"] == SendRoute));
        Assert.Contains(onA, s => s.Name == "http_server_request_duration_seconds_count" && s["http_route"] == SendRoute
                                  && s["http_request_method"] == "PUT" && s["http_response_status_code"] == "200" && s.Value >= 1);

        // The events writer (on whichever silo it lives) committed the row in a group commit it measured.
        var both = onA.Concat(after).ToList();
        Assert.True(Sum(both, "homeserver_stream_writer_appends_total", IsEvents) > writersBefore);
        Assert.True(Sum(both, "homeserver_stream_writer_batch_size_count", IsEvents) >= 1);
        Assert.True(Sum(both, "homeserver_stream_writer_commit_duration_seconds_count", IsEvents) >= 1);
        Assert.Contains(both, s => s.Name == "homeserver_stream_writer_position" && IsEvents(s) && s.Value > 0);
        Assert.Contains(both, s => s.Name == "homeserver_stream_writer_epoch" && IsEvents(s) && s.Value >= 1);

        // Caches, Orleans, the runtime and the PostgreSQL pool; every series says which silo it is from.
        Assert.Contains(after, s => s.Name == "homeserver_cache_hits_total" && s["cache"] == "access_tokens" && s.Value >= 1);
        Assert.Contains(after, s => s.Name == "homeserver_cache_entries" && s["cache"] == "access_tokens");
        Assert.Contains(after, s => s.Name == "homeserver_cache_misses_total");
        Assert.Contains(after, s => s.Name == "homeserver_cache_invalidations_total");
        Assert.Contains(after, s => s.Name == "orleans_catalog_activations");
        Assert.Contains(after, s => s.Name.StartsWith("orleans_messaging_", StringComparison.Ordinal));
        Assert.Contains(after, s => s.Name.StartsWith("aspnetcore_routing_", StringComparison.Ordinal));
        Assert.Contains(after, s => s.Name == "db_client_connection_count" && s["db_client_connection_state"] == "idle");
        Assert.Contains(after, s => s.Name == "dotnet_gc_collections_total");
        var silosSeen = both.Where(s => s.Name.StartsWith("homeserver_", StringComparison.Ordinal)).Select(s => s["service_instance_id"]).Distinct().ToList();
        Assert.Equal(2, silosSeen.Count);
        Assert.All(silosSeen, Assert.NotNull);
    }

    [Fact]
    public async Task A_silo_process_without_http_serves_metrics_and_health_on_its_metrics_port()
    {
        await using var cluster = await HomeserverTestCluster.StartAsync(1);
        using var silo = HomeserverProcess.Start("Silo", cluster.ConnectionString, http: false);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var deadline = DateTime.UtcNow.AddSeconds(60);
        IReadOnlyList<PrometheusSample> samples = [];
        while (DateTime.UtcNow < deadline && !samples.Any(s => s.Name == "homeserver_stream_reader_position"))
        {
            Assert.False(silo.Process.HasExited, $"the silo exited:\n{silo.Output}");
            try { samples = await PrometheusText.ScrapeAsync(http, $"http://127.0.0.1:{silo.MetricsPort}/metrics"); }
            catch (HttpRequestException) { await Task.Delay(250); }
        }
        Assert.Contains(samples, s => s.Name == "homeserver_stream_reader_position" && s["stream"] == "events");
        Assert.Contains(samples, s => s.Name == "orleans_catalog_activations");
        Assert.Contains(samples, s => s["service_instance_id"] == $"127.0.0.1:{silo.SiloPort}");
        // The health probes are served there too: the silo is in the cluster and its reader caught up.
        HttpStatusCode ready = 0;
        for (var i = 0; i < 120 && ready != HttpStatusCode.OK; i++)
        {
            using var probe = await http.GetAsync($"http://127.0.0.1:{silo.MetricsPort}/health/ready");
            ready = probe.StatusCode;
            if (ready != HttpStatusCode.OK) await Task.Delay(250);
        }
        Assert.Equal(HttpStatusCode.OK, ready);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync($"http://127.0.0.1:{silo.MetricsPort}/health/live")).StatusCode);
        // Nothing else is served there.
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync($"http://127.0.0.1:{silo.MetricsPort}/_matrix/client/versions")).StatusCode);
        silo.Terminate();
    }

    [Fact]
    public async Task Metrics_off_leaves_no_metrics_endpoint()
    {
        await using var cluster = await HomeserverTestCluster.StartAsync(1, new Dictionary<string, string?> { ["Homeserver:Metrics:Enabled"] = "false" });
        var response = await cluster.Silos[0].Http.GetJsonAsync("/metrics");
        Assert.Equal(HttpStatusCode.NotFound, response.Status);
        Assert.Equal("M_UNRECOGNIZED", response.ErrCode);
    }

    [Fact]
    public async Task Excluded_meters_are_not_exported_and_the_others_are()
    {
        await using var cluster = await HomeserverTestCluster.StartAsync(1, new Dictionary<string, string?>
        {
            ["Homeserver:Metrics:ExcludeMeters:0"] = "Microsoft.Orleans",
            ["Homeserver:Metrics:ExcludeMeters:1"] = "Microsoft.AspNetCore.Routing",
        });
        Assert.Equal(HttpStatusCode.OK, (await cluster.Silos[0].Http.GetAsync("/_matrix/client/versions")).StatusCode);
        using var http = new HttpClient();
        var samples = await PrometheusText.ScrapeAsync(http, cluster.Silos[0].BaseUrl + "/metrics");
        Assert.Contains(samples, s => s.Name == "homeserver_stream_reader_position");
        Assert.Contains(samples, s => s.Name.StartsWith("http_server_request_duration", StringComparison.Ordinal));
        Assert.DoesNotContain(samples, s => s.Name.StartsWith("orleans_", StringComparison.Ordinal));
        Assert.DoesNotContain(samples, s => s.Name.StartsWith("aspnetcore_routing_", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_metrics_port_serves_metrics_there_and_not_on_the_api_port()
    {
        var port = LoopbackPorts.Free();
        await using var cluster = await HomeserverTestCluster.StartAsync(1, new Dictionary<string, string?> { ["Homeserver:Metrics:Port"] = port.ToString() });
        var onApi = await cluster.Silos[0].Http.GetJsonAsync("/metrics");
        Assert.Equal(HttpStatusCode.NotFound, onApi.Status);
        Assert.Equal("M_UNRECOGNIZED", onApi.ErrCode);
        using var http = new HttpClient();
        var samples = await PrometheusText.ScrapeAsync(http, $"http://127.0.0.1:{port}/metrics");
        Assert.Contains(samples, s => s.Name == "homeserver_stream_reader_position");
        // The API is still where it was.
        Assert.Equal(HttpStatusCode.OK, (await cluster.Silos[0].Http.GetAsync("/_matrix/client/versions")).StatusCode);
    }
}

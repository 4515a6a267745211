using Homeserver.Streams;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.Operator;

/// <summary>
/// Liveness and readiness (ASP.NET Core health checks): ready with every check healthy on a running cluster; while
/// the cluster's PostgreSQL is down, live but not ready, naming the database as the failing check; ready again by
/// itself once PostgreSQL is back.
/// </summary>
public sealed class HealthTests
{
    [Fact]
    public async Task Readiness_follows_the_database_down_and_back_while_liveness_stays_up()
    {
        await using var pg = await PrivatePostgres.StartAsync();
        await using var cluster = await HomeserverTestCluster.StartAsync(2, new Dictionary<string, string?>
        {
            ["Homeserver:Postgres"] = pg.ConnectionString,
        });
        var silo = cluster.Silos[1];

        var ready = await silo.Http.GetJsonAsync("/health/ready");
        Assert.Equal(200, ready.StatusCode);
        Assert.Equal("healthy", ready["status"].GetValue<string>());
        foreach (var check in new[] { "database", "cluster", "stream_reader" })
            Assert.Equal("healthy", ready["checks"][check]!["status"]!.GetValue<string>());
        Assert.Equal("Active", ready["checks"]["cluster"]!["data"]!["silo_status"]!.GetValue<string>());

        await pg.Server.StopAsync();
        var down = await silo.Http.GetJsonAsync("/health/ready");
        Assert.Equal(503, down.StatusCode);
        Assert.Equal("unhealthy", down["status"].GetValue<string>());
        Assert.Equal("unhealthy", down["checks"]["database"]!["status"]!.GetValue<string>());
        Assert.Equal("healthy", down["checks"]["cluster"]!["status"]!.GetValue<string>());
        var live = await silo.Http.GetJsonAsync("/health/live");
        Assert.Equal(200, live.StatusCode);
        Assert.Equal("healthy", live["status"].GetValue<string>());

        await pg.Server.StartAsync();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        MatrixResponse again;
        do
        {
            await Task.Delay(200);
            again = await silo.Http.GetJsonAsync("/health/ready");
        } while (again.StatusCode != 200 && DateTime.UtcNow < deadline);
        Assert.Equal(200, again.StatusCode);
        Assert.Equal("healthy", again["checks"]["database"]!["status"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_silo_whose_reader_is_stuck_is_not_ready_until_it_catches_up()
    {
        await using var cluster = await HomeserverTestCluster.StartAsync(2);
        var stuck = cluster.Silos[1];
        var release = new ManualResetEventSlim();
        // Applying this row on silo 1 blocks its reader's to_device cursor until released (a reader that cannot keep up).
        stuck.Get<StreamTestHooks>().Applied = e => { if (e.Kind == "health-stall") release.Wait(TimeSpan.FromSeconds(30)); };
        try
        {
            var writer = cluster.Silos[0].Grains.GetGrain<IStreamWriterGrain>(StreamNames.WriterKey(StreamNames.ToDevice, 0));
            await writer.AppendAsync([new StreamRow("health-stall", "@u:localhost", "{}")]);

            var notReady = await stuck.Http.GetJsonAsync("/health/ready");
            Assert.Equal(503, notReady.StatusCode);
            var reader = notReady["checks"]["stream_reader"]!;
            Assert.Equal("unhealthy", reader["status"]!.GetValue<string>());
            Assert.True(reader["data"]![StreamNames.WriterKey(StreamNames.ToDevice, 0)]!.GetValue<long>() >= 1);
            Assert.Equal("healthy", notReady["checks"]["database"]!["status"]!.GetValue<string>());
            Assert.Equal(200, (await cluster.Silos[0].Http.GetJsonAsync("/health/ready")).StatusCode);
        }
        finally { release.Set(); }
        Assert.Equal(200, (await stuck.Http.GetJsonAsync("/health/ready")).StatusCode);
    }
}

using Homeserver.Storage;
using Homeserver.Streams;
using Homeserver.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;

namespace Homeserver.Tests.Streams;

/// <summary>PostgreSQL goes away under a running cluster and comes back: appends fail distinctly, then resume.</summary>
public sealed class DatabaseOutageTests
{
    [Fact]
    public async Task Appends_fail_while_the_database_is_down_and_resume_without_a_restart()
    {
        var folder = Path.Combine(Path.GetTempPath(), $"homeserver-outage-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(folder, (UnixFileMode)0b111_101_101);
        var postgres = new EmbeddedPostgres(folder, NullLogger.Instance, fsync: false);
        await postgres.StartAsync();
        try
        {
            await using var cluster = await HomeserverTestCluster.StartAsync(2, new Dictionary<string, string?>
            {
                ["Homeserver:Postgres"] = postgres.ConnectionString() + ";Timeout=3",
            });
            var writer = cluster.Silos[1].Grains.GetGrain<IStreamWriterGrain>(StreamNames.WriterKey(StreamNames.ToDevice, 0));
            var before = await writer.AppendAsync([new StreamRow("test", "@u:localhost", "{\"p\":\"before\"}")]);

            Assert.Equal(200, (int)(await cluster.Silos[0].Http.GetAsync("/health/ready")).StatusCode);
            await postgres.StopAsync();
            Assert.Equal(503, (int)(await cluster.Silos[0].Http.GetAsync("/health/ready")).StatusCode);
            Assert.Equal(200, (int)(await cluster.Silos[0].Http.GetAsync("/health/live")).StatusCode);
            var failed = new List<string>();
            for (var i = 0; i < 3; i++)
            {
                var id = $"down{i}";
                var e = await Assert.ThrowsAsync<StreamUnavailableException>(() => writer.AppendAsync([new StreamRow("test", "@u:localhost", $"{{\"p\":\"{id}\"}}")]));
                Assert.Contains("nothing was acknowledged", e.Message);
                failed.Add(id);
            }

            await postgres.StartAsync();
            AppendResult? after = null;
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (after is null && DateTime.UtcNow < deadline)
            {
                try { after = await writer.AppendAsync([new StreamRow("test", "@u:localhost", "{\"p\":\"after\"}")]); }
                catch (StreamUnavailableException) { await Task.Delay(200); }
            }
            Assert.NotNull(after);
            Assert.True(after!.LastPosition > before.LastPosition);

            foreach (var silo in cluster.Silos)
                Assert.True(await silo.Get<StreamNotifier>().WaitForTokenAsync(StreamToken.Zero.Advance(StreamNames.ToDevice, 0, after.LastPosition), TimeSpan.FromSeconds(15)));

            var logged = new List<string>();
            await using (var cmd = cluster.Database.CreateCommand("SELECT payload::json->>'p' FROM stream_log WHERE stream = 'to_device'"))
            await using (var reader = await cmd.ExecuteReaderAsync())
                while (await reader.ReadAsync()) logged.Add(reader.GetString(0));
            Assert.Contains("before", logged);
            Assert.Contains("after", logged);
            Assert.DoesNotContain(logged, failed.Contains);
        }
        finally
        {
            await postgres.StopAsync();
            try { Directory.Delete(folder, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}

using Homeserver.Streams;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Streams;

/// <summary>PostgreSQL goes away under a running cluster and comes back: appends fail distinctly, then resume.</summary>
public sealed class DatabaseOutageTests
{
    [Fact]
    public async Task Appends_fail_while_the_database_is_down_and_resume_without_a_restart()
    {
        await using var pg = await PrivatePostgres.StartAsync();
        var postgres = pg.Server;
        await using var cluster = await HomeserverTestCluster.StartAsync(2, new Dictionary<string, string?>
        {
            ["Homeserver:Postgres"] = pg.ConnectionString,
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

    [Fact]
    public async Task Requests_while_the_database_is_down_are_503_with_retry_after_and_service_resumes_by_itself()
    {
        await using var pg = await PrivatePostgres.StartAsync();
        var postgres = pg.Server;
        var log = new ErrorLogCapture();
        await using var cluster = await HomeserverTestCluster.StartAsync(2, new Dictionary<string, string?>
        {
            ["Homeserver:Postgres"] = pg.ConnectionString,
        }, log.AddTo);
        var alice = await MatrixTestClient.RegisterAsync(cluster.Silos[0]);
        var room = await alice.CreateRoomAsync();
        var sent = await alice.SendTextAsync(room, "before");
        var onB = alice.On(cluster.Silos[1]);

        await postgres.StopAsync();
        var requests = new Func<Task<HttpResponseMessage>>[]
        {
            () => alice.Http.PutAsync($"{MatrixPaths.Room(room)}/send/m.room.message/down1", Json("{\"msgtype\":\"m.text\",\"body\":\"down\"}")),
            () => onB.Http.PutAsync($"{MatrixPaths.Room(room)}/send/m.room.message/down2", Json("{\"msgtype\":\"m.text\",\"body\":\"down\"}")),
            () => alice.Http.GetAsync($"{MatrixPaths.Room(room)}/messages?dir=b&limit=5"),
            () => onB.Http.GetAsync($"{MatrixPaths.V3}/sync?timeout=0"),
            () => alice.Http.PutAsync($"{MatrixPaths.V3}/user/{MatrixPaths.E(alice.UserId)}/account_data/org.example", Json("{}")),
            () => cluster.Silos[1].Http.PostAsync($"{MatrixPaths.V3}/register", Json("{\"username\":\"downuser\",\"password\":\"pw-123456789\",\"auth\":{\"type\":\"m.login.dummy\"}}")),
            () => cluster.Silos[0].Http.PostAsync($"{MatrixPaths.V3}/login", Json($"{{\"type\":\"m.login.password\",\"user\":\"{alice.UserId}\",\"password\":\"{MatrixTestClient.DefaultPassword}\"}}")),
            () => onB.Http.PostAsync($"{MatrixPaths.V3}/user_directory/search", Json("{\"search_term\":\"a\"}")),
        };
        try
        {
            foreach (var request in requests)
            {
                using var response = await request();
                var body = await response.Content.ReadAsStringAsync();
                Assert.True((int)response.StatusCode == 503,
                    $"{response.RequestMessage?.RequestUri}: {(int)response.StatusCode} {body}\n{log.Entries.LastOrDefault()?.Exception}");
                Assert.True(response.Headers.RetryAfter is not null, "no Retry-After");
                Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
                Assert.Contains("\"errcode\"", body);
            }
        }
        finally
        {
            // Back before the cluster is disposed, whatever happened: silos leave through the membership table.
            await postgres.StartAsync();
        }
        var deadline = DateTime.UtcNow.AddSeconds(30);
        var resumed = false;
        while (!resumed && DateTime.UtcNow < deadline)
        {
            var r = await alice.PutAsync($"{MatrixPaths.Room(room)}/send/m.room.message/after", new { msgtype = "m.text", body = "after" });
            resumed = r.StatusCode == 200;
            if (!resumed) await Task.Delay(200);
        }
        Assert.True(resumed, "sending did not resume");
        (await onB.GetAsync($"{MatrixPaths.Event(room, sent)}")).EnsureSuccess();
        (await onB.GetAsync($"{MatrixPaths.V3}/sync?timeout=0")).EnsureSuccess();
        Assert.DoesNotContain(log.Entries, e => e.Category.Contains("MatrixErrorMiddleware"));
    }

    private static StringContent Json(string text) => new(text, System.Text.Encoding.UTF8, "application/json");
}

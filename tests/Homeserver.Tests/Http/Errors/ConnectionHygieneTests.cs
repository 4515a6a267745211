using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using Npgsql;
using Xunit.Abstractions;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.Errors;

/// <summary>
/// Pooled database connections stay in step with their requests. For a while, clients that vanish mid-request, NUL
/// sent where it once reached a query (the input that desynchronised a connection through Npgsql's auto-prepare),
/// statements that fail on the server's own data source (at execution, in the middle of a batch, abandoned mid-result,
/// cancelled) all run beside honest users who each write values only they know and read them back. Every honest
/// answer must be the caller's own value, nothing answers 500, and no connection reports a protocol error.
/// </summary>
public sealed class ConnectionHygieneTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly TimeSpan Duration = TimeSpan.FromSeconds(12);
    private const int MaxRoundsPerWorker = 400;

    private readonly ErrorLogCapture _log = new();
    private HomeserverTestCluster _cluster = null!;

    // A small pool, so that every connection is reused often and a poisoned one would be met again soon.
    public async Task InitializeAsync() =>
        _cluster = await HomeserverTestCluster.StartAsync(silos: 1, configure: _log.AddTo,
            settings: new Dictionary<string, string?> { ["Homeserver:Postgres"] = (await TestPostgres.CreateDatabaseAsync()) + ";Maximum Pool Size=8" });

    public async Task DisposeAsync() => await _cluster.DisposeAsync();

    [Fact]
    public async Task Answers_belong_to_their_requests_while_requests_vanish_and_statements_fail()
    {
        var silo = _cluster.Silos[0];
        // The clock starts once every worker has registered and made its room, so that a slow start (CI under load
        // has spent the whole duration registering) still leaves them the duration side by side.
        using var stop = new CancellationTokenSource();
        const int workers = 8;
        var arrived = 0;
        var go = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        async Task Ready()
        {
            if (Interlocked.Increment(ref arrived) == workers)
            {
                stop.CancelAfter(Duration);
                go.TrySetResult();
            }
            // Bounded: a worker whose set-up failed never arrives, and its fault fails the test below.
            if (await Task.WhenAny(go.Task, Task.Delay(TimeSpan.FromSeconds(90))) != go.Task) stop.Cancel();
        }
        var failures = new List<string>();
        void Fail(string what) { lock (failures) failures.Add(what); }
        var counts = new int[4];

        var honest = Enumerable.Range(0, 4).Select(i => HonestAsync(silo, i, Ready, stop.Token, Fail, () => Interlocked.Increment(ref counts[0])));
        var vanishing = Enumerable.Range(0, 2).Select(_ => VanishingAsync(silo, Ready, stop.Token, () => Interlocked.Increment(ref counts[1])));
        var nul = NulInputAsync(silo, Ready, stop.Token, Fail, () => Interlocked.Increment(ref counts[2]));
        var failing = FailingStatementsAsync(silo.Get<NpgsqlDataSource>(), Ready, stop.Token, () => Interlocked.Increment(ref counts[3]));
        await Task.WhenAll([.. honest, .. vanishing, nul, failing]);

        output.WriteLine($"honest rounds {counts[0]}, vanished requests {counts[1]}, NUL requests {counts[2]}, failed statements {counts[3]}");
        Assert.True(counts[0] >= 20 && counts[1] >= 20 && counts[2] >= 20 && counts[3] >= 20, "too little load to mean anything");
        Assert.True(failures.Count == 0, string.Join("\n", failures.Take(20)));
        var errors = _log.Entries.Where(e => e.Category.Contains("MatrixErrorMiddleware")
            || (e.Exception?.ToString() ?? e.Message).Contains("unexpected backend message", StringComparison.OrdinalIgnoreCase)).ToList();
        Assert.True(errors.Count == 0, string.Join("\n", errors.Take(5).Select(e => e.Exception?.ToString() ?? e.Message)));
    }

    /// <summary>Writes values only this worker knows and reads each back through a database read.</summary>
    private static async Task HonestAsync(TestSilo silo, int index, Func<Task> ready, CancellationToken stop, Action<string> fail, Action counted)
    {
        var user = await MatrixTestClient.RegisterAsync(silo, MatrixTestClient.UniqueLocalpart($"honest{index}"));
        var room = await user.CreateRoomAsync();
        await ready();
        for (var round = 0; round < MaxRoundsPerWorker && !stop.IsCancellationRequested; round++)
        {
            var mine = $"{user.UserId}/{round}/{Guid.NewGuid():N}";
            (await user.PutAsync($"{V3}/user/{E(user.UserId)}/account_data/org.example.mine", new { v = mine })).EnsureSuccess();
            var data = (await user.GetAsync($"{V3}/user/{E(user.UserId)}/account_data/org.example.mine")).EnsureSuccess();
            if (data.Body?["v"]?.GetValue<string>() != mine) fail($"account data: wrote {mine}, read {data.Text}");

            var eventId = await user.SendTextAsync(room, mine);
            // /messages reads the room's history from the database (not the event cache).
            var page = (await user.GetAsync($"{Room(room)}/messages?dir=b&limit=1")).EnsureSuccess();
            var latest = page["chunk"].AsArray().FirstOrDefault();
            if (latest?["event_id"]?.GetValue<string>() != eventId || latest["content"]?["body"]?.GetValue<string>() != mine)
                fail($"messages: sent {eventId} '{mine}', read {page.Text[..Math.Min(300, page.Text.Length)]}");

            (await user.PutAsync($"{V3}/profile/{E(user.UserId)}/displayname", new { displayname = mine[..Math.Min(200, mine.Length)] })).EnsureSuccess();
            var profile = (await user.GetAsync($"{V3}/profile/{E(user.UserId)}/displayname")).EnsureSuccess();
            if (profile.Body?["displayname"]?.GetValue<string>() != mine[..Math.Min(200, mine.Length)]) fail($"profile: wrote {mine}, read {profile.Text}");

            var fetched = (await user.GetAsync(Event(room, eventId))).EnsureSuccess();
            if (fetched.Body?["content"]?["body"]?.GetValue<string>() != mine) fail($"event: sent '{mine}', read {fetched.Text}");
            counted();
        }
    }

    /// <summary>Requests whose client goes away: mid-body, mid-long-poll, or cancelled at a random moment.</summary>
    private static async Task VanishingAsync(TestSilo silo, Func<Task> ready, CancellationToken stop, Action counted)
    {
        var user = await MatrixTestClient.RegisterAsync(silo, MatrixTestClient.UniqueLocalpart("vanishing"));
        var room = await user.CreateRoomAsync();
        await ready();
        var uri = new Uri(silo.BaseUrl);
        var random = new Random(17);
        for (var round = 0; round < MaxRoundsPerWorker && !stop.IsCancellationRequested; round++)
        {
            switch (round % 3)
            {
                case 0:
                    // Half a body, then gone.
                    using (var socket = new TcpClient())
                    {
                        await socket.ConnectAsync(uri.Host, uri.Port);
                        var head = $"PUT {Room(room)}/send/m.room.message/v{round} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {user.AccessToken}\r\n" +
                                   "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"msgtype\":\"m.text\",\"body\":\"";
                        await socket.GetStream().WriteAsync(Encoding.ASCII.GetBytes(head));
                    }
                    break;
                case 1:
                    // A long-poll abandoned while it waits.
                    using (var socket = new TcpClient())
                    {
                        await socket.ConnectAsync(uri.Host, uri.Port);
                        var request = $"GET {V3}/sync?timeout=5000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {user.AccessToken}\r\n\r\n";
                        await socket.GetStream().WriteAsync(Encoding.ASCII.GetBytes(request));
                        await Task.Delay(random.Next(1, 30));
                    }
                    break;
                default:
                    // An ordinary client that gives up at a random moment.
                    using (var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(random.Next(1, 15))))
                    {
                        try
                        {
                            var path = random.Next(3) switch
                            {
                                0 => $"{Room(room)}/messages?dir=b&limit=50",
                                1 => $"{V3}/sync?timeout=0&full_state=true",
                                _ => $"{V3}/user_directory/search",
                            };
                            using var message = new HttpRequestMessage(path.Contains("search") ? HttpMethod.Post : HttpMethod.Get, path);
                            if (path.Contains("search")) message.Content = new StringContent("{\"search_term\":\"honest\"}", Encoding.UTF8, "application/json");
                            using var response = await user.Http.SendAsync(message, cancel.Token);
                        }
                        catch (OperationCanceledException) { }
                    }
                    break;
            }
            counted();
        }
    }

    /// <summary>NUL where a client once got it into a query: each must be refused as input, never reach PostgreSQL.</summary>
    private static async Task NulInputAsync(TestSilo silo, Func<Task> ready, CancellationToken stop, Action<string> fail, Action counted)
    {
        var user = await MatrixTestClient.RegisterAsync(silo, MatrixTestClient.UniqueLocalpart("nul"));
        var room = await user.CreateRoomAsync();
        var eventId = await user.SendTextAsync(room, "target");
        await ready();
        for (var round = 0; round < MaxRoundsPerWorker && !stop.IsCancellationRequested; round++)
        {
            var (method, path, body) = (round % 4) switch
            {
                0 => (HttpMethod.Post, $"{Room(room)}/read_markers", "{\"m.read\":\"$x\\u0000y\",\"m.fully_read\":\"$a\\u0000\"}"),
                1 => (HttpMethod.Post, $"{V3}/user_directory/search", "{\"search_term\":\"a\\u0000\"}"),
                2 => (HttpMethod.Get, $"{Room(room)}/messages?dir=b&from=t%00", (string?)null),
                _ => (HttpMethod.Post, $"{V3}/keys/claim", "{\"one_time_keys\":{\"@x\\u0000:localhost\":{\"D\":\"signed_curve25519\"}}}"),
            };
            var r = await user.Http.SendJsonAsync(method, path, body);
            if (r.StatusCode != 400) fail($"{method} {path} with NUL: {r.StatusCode} {r.Text}");
            // The read that a poisoned connection used to break.
            var e = await user.GetAsync(Event(room, eventId));
            if (e.StatusCode != 200) fail($"GET event after NUL input: {e.StatusCode} {e.Text}");
            counted();
        }
    }

    /// <summary>Statements that fail in the ways that can leave a connection mid-protocol, on the server's own pool.</summary>
    private static async Task FailingStatementsAsync(NpgsqlDataSource db, Func<Task> ready, CancellationToken stop, Action counted)
    {
        await ready();
        for (var round = 0; round < MaxRoundsPerWorker && !stop.IsCancellationRequested; round++)
        {
            try
            {
                switch (round % 5)
                {
                    case 0:
                        // Fails while executing (jsonb refuses \u0000).
                        await using (var cmd = db.CreateCommand("SELECT $1::jsonb"))
                        {
                            cmd.Parameters.AddWithValue("{\"a\":\"\\u0000\"}");
                            await cmd.ExecuteScalarAsync();
                        }
                        break;
                    case 1:
                        // The middle statement of a batch fails; the others were sent with it.
                        await using (var batch = db.CreateBatch())
                        {
                            batch.BatchCommands.Add(new NpgsqlBatchCommand("SELECT 1"));
                            batch.BatchCommands.Add(new NpgsqlBatchCommand("SELECT 1 / (random() * 0)::int"));
                            batch.BatchCommands.Add(new NpgsqlBatchCommand("SELECT event_id FROM events LIMIT 5"));
                            await using var reader = await batch.ExecuteReaderAsync();
                            while (await reader.NextResultAsync()) { }
                        }
                        break;
                    case 2:
                        // A reader left after one row of many.
                        await using (var cmd = db.CreateCommand("SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g"))
                        await using (var reader = await cmd.ExecuteReaderAsync())
                            await reader.ReadAsync();
                        break;
                    case 3:
                        // Cancelled while PostgreSQL works on it.
                        using (var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(5)))
                        await using (var cmd = db.CreateCommand("SELECT pg_sleep(0.2)"))
                            await cmd.ExecuteNonQueryAsync(cancel.Token);
                        break;
                    default:
                        // A unique violation.
                        await using (var cmd = db.CreateCommand("INSERT INTO stream_writers SELECT * FROM stream_writers LIMIT 1"))
                            await cmd.ExecuteNonQueryAsync();
                        break;
                }
            }
            catch (Exception e) when (e is PostgresException or OperationCanceledException or NpgsqlException)
            {
            }
            counted();
        }
    }
}

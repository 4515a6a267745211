using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Npgsql;

namespace Homeserver.Tests.Infrastructure;

/// <summary>What the process-level tests ask of the shared database and of the rooms they wrote to.</summary>
public static class ProcessCluster
{
    /// <summary>Waits until at least <paramref name="count"/> silos are active in the membership table.</summary>
    public static Task WaitForActiveSilosAsync(NpgsqlDataSource db, int count, params HomeserverProcess[] watched) =>
        WaitForCountAsync(db, "SELECT count(*) FROM OrleansMembershipTable WHERE Status = 3", count, $"{count} active silos", watched);

    /// <summary>Waits until <paramref name="silo"/> is active in the membership table.</summary>
    public static Task WaitForSiloActiveAsync(NpgsqlDataSource db, HomeserverProcess silo) =>
        WaitForCountAsync(db, $"SELECT count(*) FROM OrleansMembershipTable WHERE Status = 3 AND Port = {silo.SiloPort}", 1,
            "the silo active", silo);

    public static Task WaitForWritersAsync(NpgsqlDataSource db) =>
        WaitForCountAsync(db, "SELECT count(*) FROM stream_writers WHERE stream = 'events'", 1, "an active events writer");

    /// <summary>Polls <paramref name="sql"/> (a count) until it reaches <paramref name="atLeast"/> (90 s at most), failing
    /// at once with their output when a watched process exits.</summary>
    private static async Task WaitForCountAsync(NpgsqlDataSource db, string sql, long atLeast, string what, params HomeserverProcess[] watched)
    {
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (DateTime.UtcNow < deadline)
        {
            foreach (var p in watched) Assert.False(p.Process.HasExited, $"a process exited early:\n{p.Output}");
            if (await CountAsync(db, sql) >= atLeast) return;
            await Task.Delay(250);
        }
        Assert.Fail($"never saw {what}:\n{string.Join("\n----\n", watched.Select(p => p.Output))}");
    }

    /// <summary>The count, or 0 while no process has created the table yet.</summary>
    public static async Task<long> CountAsync(NpgsqlDataSource db, string sql)
    {
        try
        {
            await using var cmd = db.CreateCommand(sql);
            return (long)(await cmd.ExecuteScalarAsync())!;
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            return 0;
        }
    }

    /// <summary>How many stream writers the silo on <paramref name="siloPort"/> holds.</summary>
    public static async Task<long> WritersOnSiloAsync(NpgsqlDataSource db, int siloPort)
    {
        await using var cmd = db.CreateCommand("SELECT count(*) FROM stream_writers WHERE silo LIKE $1");
        cmd.Parameters.AddWithValue($"%:{siloPort}:%"); // SiloAddress.ToString(): S{address}:{port}:{generation}
        return (long)(await cmd.ExecuteScalarAsync())!;
    }

    /// <summary>Every message body in the room, newest first, through /messages page by page.</summary>
    public static async Task<List<string>> MessageBodiesAsync(MatrixTestClient user, string room)
    {
        var bodies = new List<string>();
        string? from = null;
        for (var page = 0; page < 1000; page++)
        {
            var r = (await user.GetAsync($"{MatrixPaths.Room(room)}/messages?dir=b&limit=500{(from is null ? "" : "&from=" + from)}")).EnsureSuccess();
            var chunk = r["chunk"].AsArray();
            foreach (var e in chunk)
                if (e?["type"]?.GetValue<string>() == "m.room.message") bodies.Add(e["content"]!["body"]!.GetValue<string>());
            if (chunk.Count == 0 || r.Body?["end"] is null) break;
            from = r["end"].GetValue<string>();
        }
        return bodies;
    }

    /// <summary>Every acknowledged message is in its room exactly once (read through <paramref name="reader"/>).</summary>
    public static async Task AssertEveryAcknowledgedMessageOnceAsync(MatrixTestClient reader, IEnumerable<string> rooms,
        IReadOnlyDictionary<string, (string Room, string Body)> acked)
    {
        foreach (var room in rooms)
        {
            var bodies = await MessageBodiesAsync(reader, room);
            Assert.Equal(bodies.Count, bodies.Distinct().Count());
            Assert.Empty(acked.Values.Where(a => a.Room == room).Select(a => a.Body).Except(bodies));
        }
    }

    /// <summary>
    /// Sends one message as real clients do through an outage: a 503 with <c>Retry-After</c> is retried after a moment
    /// with the same transaction id (bounded). Returns the event id, or the answer that was neither.
    /// </summary>
    public static async Task<(string? EventId, string? Unexpected, int Unavailable)> SendRetryingOutagesAsync(HttpClient http, string room, string body)
    {
        var unavailable = 0;
        for (var attempt = 0; attempt < 200; attempt++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Put, $"{MatrixPaths.Room(room)}/send/m.room.message/{body}")
            {
                Content = new StringContent($"{{\"msgtype\":\"m.text\",\"body\":\"{body}\"}}", Encoding.UTF8, "application/json"),
            };
            using var response = await http.SendAsync(request);
            var text = await response.Content.ReadAsStringAsync();
            if (response.StatusCode == System.Net.HttpStatusCode.OK) return (JsonNode.Parse(text)!["event_id"]!.GetValue<string>(), null, unavailable);
            if (response.StatusCode != System.Net.HttpStatusCode.ServiceUnavailable || response.Headers.RetryAfter is null || !text.Contains("\"errcode\""))
                return (null, $"{body}: {(int)response.StatusCode} {text}", unavailable);
            unavailable++;
            await Task.Delay(200);
        }
        return (null, $"{body}: still unavailable after 200 attempts", unavailable);
    }
}

/// <summary>
/// One sender per room, each sending numbered messages with their transaction ids as real clients do through an
/// outage (<see cref="ProcessCluster.SendRetryingOutagesAsync"/>) until stopped.
/// </summary>
public sealed class OutageTolerantLoad
{
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _senders;
    private int _unavailable;

    public ConcurrentDictionary<string, (string Room, string Body)> Acked { get; } = new();
    public ConcurrentQueue<string> Unexpected { get; } = new();
    /// <summary>How many answers were 503 with <c>Retry-After</c> (each retried).</summary>
    public int Unavailable => Volatile.Read(ref _unavailable);

    public OutageTolerantLoad(HttpClient http, IReadOnlyList<string> rooms, string prefix)
    {
        _senders = rooms.Select((room, index) => Task.Run(async () =>
        {
            for (var n = 0; n < 100_000 && !_stop.IsCancellationRequested; n++)
            {
                var body = $"{prefix}{index}-{n}";
                var (eventId, failure, retries) = await ProcessCluster.SendRetryingOutagesAsync(http, room, body);
                Interlocked.Add(ref _unavailable, retries);
                if (eventId is not null) Acked[eventId] = (room, body);
                else Unexpected.Enqueue(failure!);
            }
        })).ToList();
    }

    public async Task StopAsync()
    {
        _stop.Cancel();
        await Task.WhenAll(_senders);
    }
}

/// <summary>
/// A client behind a load balancer in front of several front ends: each request goes to the next front end in turn,
/// and one that gets no answer at all (connection refused or reset: a front end stopped or restarting) is sent to
/// the next front end, as a proxy with retries on connection errors does. Any answer counts, whatever its status.
/// </summary>
public sealed class BalancedClient(string accessToken, params string[] frontEnds)
{
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(60) };
    private string[] _frontEnds = frontEnds;
    private int _next;

    /// <summary>A front end replaced by another (a restart: the new process listens elsewhere).</summary>
    public void Replace(string oldUrl, string newUrl) =>
        _frontEnds = _frontEnds.Select(u => u == oldUrl ? newUrl : u).ToArray();

    public async Task<MatrixResponse> SendAsync(HttpMethod method, string path, JsonNode? body = null)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        for (var attempt = 0; ; attempt++)
        {
            var frontEnds = _frontEnds;
            var url = frontEnds[(int)((uint)Interlocked.Increment(ref _next) % frontEnds.Length)];
            using var request = new HttpRequestMessage(method, url + path);
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", accessToken);
            if (body is not null) request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
            try
            {
                using var response = await _http.SendAsync(request);
                var text = await response.Content.ReadAsStringAsync();
                JsonNode? json = null;
                try { json = text.Length > 0 ? JsonNode.Parse(text) : null; } catch (JsonException) { }
                return new MatrixResponse(response.StatusCode, json, text);
            }
            catch (HttpRequestException) when (DateTime.UtcNow < deadline && attempt < 100)
            {
                await Task.Delay(50);
            }
        }
    }
}

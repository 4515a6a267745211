using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using Npgsql;

namespace Homeserver.Bench;

/// <summary>
/// Issue 12's media and search benchmarks, each beside its baseline in the same run on one PostgreSQL.
/// <para><c>media</c>: 1 MB uploads and downloads from many connections through the media repository, beside a thin
/// endpoint that streams the same bytes into and out of one PostgreSQL row.</para>
/// <para><c>search</c>: <c>POST /search</c> latency over a million indexed messages (written straight into the tables
/// the event persister writes, with words drawn from a Zipf distribution), for rare and common words, by rank and by
/// recency.</para>
/// </summary>
public static class MediaSearchBenchmark
{
    private const string V3 = "/_matrix/client/v3";

    public static async Task RunMediaAsync(TimeSpan duration, int connections, int fileBytes)
    {
        await using var cluster = await BenchCluster.StartAsync(2, map: MapThinMedia);
        await using (var db = NpgsqlDataSource.Create(cluster.ConnectionString))
        await using (var create = db.CreateCommand("CREATE TABLE IF NOT EXISTS bench_blobs (id bigserial PRIMARY KEY, data bytea NOT NULL)"))
            await create.ExecuteNonQueryAsync();
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = connections }) { Timeout = TimeSpan.FromMinutes(2) };
        var token = (await BenchHttp.SendAsync(http, HttpMethod.Post, cluster.Urls[0] + $"{V3}/register", null,
            new JsonObject { ["username"] = "media-bench", ["password"] = "benchmark-password", ["auth"] = new JsonObject { ["type"] = "m.login.dummy" } }))["access_token"]!.GetValue<string>();
        var file = new byte[fileBytes];
        new Random(1).NextBytes(file);

        var thinIds = new List<long>();
        var mediaIds = new List<string>();
        async Task ThinUpload(int n, int worker)
        {
            using var content = new ByteArrayContent(file);
            using var response = await http.PostAsync($"{cluster.Urls[worker % 2]}/bench/blob", content);
            response.EnsureSuccessStatusCode();
            var id = long.Parse(await response.Content.ReadAsStringAsync());
            lock (thinIds) thinIds.Add(id);
        }
        async Task Upload(int n, int worker)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, $"{cluster.Urls[worker % 2]}/_matrix/media/v3/upload?filename=bench.bin");
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            request.Content = new ByteArrayContent(file);
            request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            using var response = await http.SendAsync(request);
            response.EnsureSuccessStatusCode();
            var uri = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["content_uri"]!.GetValue<string>();
            lock (mediaIds) mediaIds.Add(uri["mxc://".Length..]);
        }
        async Task ThinDownload(int n, int worker)
        {
            long id;
            lock (thinIds) id = thinIds[(n * 31 + worker) % thinIds.Count];
            using var response = await http.GetAsync($"{cluster.Urls[(worker + 1) % 2]}/bench/blob/{id}", HttpCompletionOption.ResponseHeadersRead);
            response.EnsureSuccessStatusCode();
            await (await response.Content.ReadAsStreamAsync()).CopyToAsync(Stream.Null);
        }
        async Task Download(int n, int worker)
        {
            string id;
            lock (mediaIds) id = mediaIds[(n * 31 + worker) % mediaIds.Count];
            using var request = new HttpRequestMessage(HttpMethod.Get, $"{cluster.Urls[(worker + 1) % 2]}/_matrix/client/v1/media/download/{id}");
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            response.EnsureSuccessStatusCode();
            await (await response.Content.ReadAsStreamAsync()).CopyToAsync(Stream.Null);
        }

        var mb = fileBytes / 1024.0 / 1024.0;
        string Line(string what, (double Rate, List<double> Latencies, long Count) r) =>
            $"{what}: {r.Rate:F1} files/s ({r.Rate * mb:F1} MB/s), {Stats.Summary(r.Latencies)}";
        // Warm-up of each path first (unmeasured), as the send benchmark does; then alternating measured rounds.
        await SendBenchmark.LoadAsync(TimeSpan.FromSeconds(5), connections, ThinUpload);
        await SendBenchmark.LoadAsync(TimeSpan.FromSeconds(5), connections, Upload);
        for (var round = 1; round <= 2; round++)
        {
            var thinUp = await SendBenchmark.LoadAsync(duration, connections, ThinUpload);
            var up = await SendBenchmark.LoadAsync(duration, connections, Upload);
            var thinDown = await SendBenchmark.LoadAsync(duration, connections, ThinDownload);
            var down = await SendBenchmark.LoadAsync(duration, connections, Download);
            Console.WriteLine($"round {round}, {connections} connections, {fileBytes / 1024} KiB files:");
            Console.WriteLine("  " + Line("thin upload (one INSERT of the bytes)", thinUp));
            Console.WriteLine("  " + Line("POST /media/v3/upload", up) + $"; ratio {up.Rate / thinUp.Rate:F2}x");
            Console.WriteLine("  " + Line("thin download (one SELECT, streamed)", thinDown));
            Console.WriteLine("  " + Line("GET /client/v1/media/download (other silo)", down) + $"; ratio {down.Rate / thinDown.Rate:F2}x");
        }
    }

    private static void MapThinMedia(WebApplication app)
    {
        app.MapPost("/bench/blob", async (HttpContext context, NpgsqlDataSource db) =>
        {
            using var buffer = new MemoryStream();
            await context.Request.Body.CopyToAsync(buffer);
            await using var cmd = db.CreateCommand("INSERT INTO bench_blobs (data) VALUES ($1) RETURNING id");
            cmd.Parameters.AddWithValue(buffer.ToArray());
            return Results.Text(((long)(await cmd.ExecuteScalarAsync())!).ToString());
        }).WithMetadata(Homeserver.Api.Http.ClientBodyPolicy.Ignored);
        app.MapGet("/bench/blob/{id:long}", async (HttpContext context, long id, NpgsqlDataSource db) =>
        {
            await using var connection = await db.OpenConnectionAsync();
            await using var cmd = new NpgsqlCommand("SELECT data FROM bench_blobs WHERE id = $1", connection);
            cmd.Parameters.AddWithValue(id);
            await using var reader = await cmd.ExecuteReaderAsync(System.Data.CommandBehavior.SequentialAccess);
            if (!await reader.ReadAsync()) return Results.NotFound();
            context.Response.ContentType = "application/octet-stream";
            await using var stream = await reader.GetStreamAsync(0);
            await stream.CopyToAsync(context.Response.Body);
            return Results.Empty;
        });
    }

    public static async Task RunSearchAsync(int messages, int rooms, int queries)
    {
        await using var cluster = await BenchCluster.StartAsync(1);
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(2) };
        var token = (await BenchHttp.SendAsync(http, HttpMethod.Post, cluster.Urls[0] + $"{V3}/register", null,
            new JsonObject { ["username"] = "search-bench", ["password"] = "benchmark-password", ["auth"] = new JsonObject { ["type"] = "m.login.dummy" } }))["access_token"]!.GetValue<string>();
        var userId = $"@search-bench:localhost";
        var roomIds = new List<string>();
        for (var i = 0; i < rooms; i++)
            roomIds.Add((await BenchHttp.SendAsync(http, HttpMethod.Post, cluster.Urls[0] + $"{V3}/createRoom", token,
                new JsonObject { ["preset"] = "private_chat" }))["room_id"]!.GetValue<string>());

        // A vocabulary whose word k appears with probability ~ 1/k (Zipf), as words in chat do.
        const int vocabulary = 5_000;
        string WordAt(int k) => $"w{k}x";
        var weights = Enumerable.Range(1, vocabulary).Select(k => 1.0 / k).ToArray();
        var cumulative = new double[vocabulary];
        double sum = 0;
        for (var k = 0; k < vocabulary; k++) cumulative[k] = sum += weights[k];

        Console.WriteLine($"indexing {messages:N0} messages in {rooms} rooms...");
        var load = Stopwatch.StartNew();
        await using (var db = NpgsqlDataSource.Create(cluster.ConnectionString))
        {
            var random = new Random(7);
            const int batchSize = 10_000;
            for (var done = 0; done < messages; done += batchSize)
            {
                var n = Math.Min(batchSize, messages - done);
                var bodies = new string[n];
                for (var i = 0; i < n; i++)
                    bodies[i] = string.Join(' ', Enumerable.Range(0, 8 + random.Next(8)).Select(_ => WordAt(Array.BinarySearch(cumulative, random.NextDouble() * sum) is var b && b < 0 ? ~b + 1 : b + 1)));
                await using var cmd = db.CreateCommand(
                    """
                    WITH input AS (
                        SELECT ord, body, $2::text[] AS rooms FROM unnest($1::text[]) WITH ORDINALITY AS t(body, ord)
                    ), rows AS (
                        SELECT '$bench' || ($3 + ord) AS event_id, rooms[1 + (($3 + ord) % array_length(rooms, 1))] AS room_id,
                               body, 1000 + $3 + ord AS topological, 10000000 + $3 + ord AS position
                          FROM input
                    ), inserted AS (
                        INSERT INTO events (event_id, room_id, stream_writer, stream_position, topological, type, sender, origin_server_ts, json)
                        SELECT event_id, room_id, 0, position, topological, 'm.room.message', $4, 1700000000000 + position,
                               jsonb_build_object('event_id', event_id, 'room_id', room_id, 'type', 'm.room.message', 'sender', $4::text,
                                   'origin_server_ts', 1700000000000 + position,
                                   'content', jsonb_build_object('msgtype', 'm.text', 'body', body))::text
                          FROM rows
                    )
                    INSERT INTO event_search (event_id, room_id, key, vector, sender, type, topological, stream_position, origin_server_ts)
                    SELECT event_id, room_id, 'content.body', to_tsvector('english', body), $4, 'm.room.message', topological, position, 1700000000000 + position
                      FROM rows
                    """);
                cmd.Parameters.AddWithValue(bodies);
                cmd.Parameters.AddWithValue(roomIds.ToArray());
                cmd.Parameters.AddWithValue((long)done);
                cmd.Parameters.AddWithValue(userId);
                await cmd.ExecuteNonQueryAsync();
            }
            // VACUUM runs alone (it refuses a multi-statement command): the visibility map lets the index scans skip the heap.
            foreach (var table in new[] { "event_search", "events" })
            {
                await using var analyze = db.CreateCommand($"VACUUM ANALYZE {table}");
                await analyze.ExecuteNonQueryAsync();
            }
        }
        Console.WriteLine($"indexed in {load.Elapsed.TotalSeconds:F0} s");

        async Task<List<double>> TimeAsync(Func<int, string> term, string order)
        {
            var latencies = new List<double>();
            for (var i = 0; i < queries; i++)
            {
                var body = new JsonObject
                {
                    ["search_categories"] = new JsonObject
                    {
                        ["room_events"] = new JsonObject { ["search_term"] = term(i), ["order_by"] = order },
                    },
                };
                var t = Stopwatch.GetTimestamp();
                await BenchHttp.SendAsync(http, HttpMethod.Post, cluster.Urls[0] + $"{V3}/search", token, body);
                latencies.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
            }
            return latencies;
        }
        var pick = new Random(11);
        string Rare(int _) => WordAt(1_000 + pick.Next(4_000)); // each in ~0.01 % of messages or less
        string Common(int _) => WordAt(10 + pick.Next(40));     // each in ~1 % of messages
        await TimeAsync(Rare, "rank"); // warm-up
        foreach (var (name, term) in new (string, Func<int, string>)[] { ("rare word", Rare), ("common word", Common) })
            foreach (var order in new[] { "rank", "recent" })
                Console.WriteLine($"search {name}, order {order} ({messages:N0} messages): {Stats.Summary(await TimeAsync(term, order))}");
    }
}

using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using Npgsql;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.Errors;

/// <summary>
/// No read path that stored data can break: one user stores the most hostile content the boundary lets through in
/// every place a client can write (and, as data from before the boundary could hold, events with <c>\u0000</c> put
/// straight into the database), then every read endpoint the app maps answers below 500 for that user and for another
/// user of the same rooms, with no unhandled exception logged.
/// </summary>
public sealed class HostileContentTests : IAsyncLifetime
{
    private readonly ErrorLogCapture _log = new();
    private HomeserverTestCluster _cluster = null!;

    public async Task InitializeAsync() => _cluster = await HomeserverTestCluster.StartAsync(silos: 2, configure: _log.AddTo);
    public async Task DisposeAsync() => await _cluster.DisposeAsync();

    // Accepted by the boundary, and each a classic way to break a parser, a cast, a collation or a serialiser.
    private static readonly string[] HostileStrings =
    [
        "\\u0000 as text", "\uFFFF\uFFFE", "\u202Eevil\u202C", "😀\U0001F4A9\u200D", "</script><script>alert(1)</script>",
        "'; DROP TABLE events; --", "%00%ff", "\\", "\"", "\u0001\u001F\u007F", new string('ü', 3000), "@x:localhost", "\r\n",
    ];

    private static JsonObject HostileObject(int depth = 28)
    {
        var content = new JsonObject();
        for (var i = 0; i < HostileStrings.Length; i++) content[$"k{i}{HostileStrings[i][..Math.Min(8, HostileStrings[i].Length)]}"] = HostileStrings[i];
        content[""] = "empty key";
        content["__proto__"] = new JsonObject { ["constructor"] = "x" };
        content["big"] = 9007199254740991L;
        content["small"] = -9007199254740991L;
        JsonNode nested = "bottom";
        for (var i = 0; i < depth; i++) nested = new JsonArray(nested);
        content["nested"] = nested;
        return content;
    }

    [Fact]
    public async Task Every_read_endpoint_answers_after_hostile_content_was_stored()
    {
        var silo = _cluster.Silos[0];
        var mallory = await MatrixTestClient.RegisterAsync(silo, MatrixTestClient.UniqueLocalpart("mallory"));
        var alice = await MatrixTestClient.RegisterAsync(_cluster.Silos[1], MatrixTestClient.UniqueLocalpart("alice"));
        var publicRoom = await mallory.CreateRoomAsync(new { preset = "public_chat", name = HostileStrings[2], topic = HostileStrings[4] });
        var privateRoom = await mallory.CreateRoomAsync(new { preset = "private_chat" });
        await alice.JoinAsync(publicRoom);

        // Events of every kind a member may send.
        var hostile = HostileObject();
        var message = new JsonObject { ["msgtype"] = "m.text", ["body"] = "@" + alice.UserId + " " + HostileStrings[3] };
        foreach (var (k, v) in hostile) message[k] = v?.DeepClone();
        var messageId = await SendAsync(mallory, publicRoom, "send/m.room.message/t1", message);
        await SendAsync(mallory, publicRoom, "send/" + E("org.example.\u202E"), hostile);
        await SendAsync(mallory, privateRoom, "send/m.room.message/t3", message);
        await SendAsync(mallory, publicRoom, "state/m.room.name/", new JsonObject { ["name"] = HostileStrings[10] });
        await SendAsync(mallory, publicRoom, "state/org.example.state/" + E(new string('ß', 127)), hostile);
        await SendAsync(mallory, privateRoom, "state/m.room.join_rules/", new JsonObject { ["join_rule"] = "invite", ["x"] = HostileObject() });
        await SendAsync(mallory, publicRoom, "state/m.room.member/" + E(mallory.UserId),
            new JsonObject { ["membership"] = "join", ["displayname"] = HostileStrings[2] + HostileStrings[5] });
        (await mallory.PutAsync($"{Room(publicRoom)}/redact/{E(messageId)}/r1", new JsonObject { ["reason"] = HostileStrings[6] })).EnsureSuccess();
        var secondId = await SendAsync(mallory, publicRoom, "send/m.room.message/t4", message);

        // Per-user data and ephemeral streams.
        (await mallory.PutAsync($"{V3}/profile/{E(mallory.UserId)}/displayname", new { displayname = HostileStrings[2] + "mallory" })).EnsureSuccess();
        (await mallory.PutAsync($"{V3}/user/{E(mallory.UserId)}/account_data/org.example.hostile", hostile)).EnsureSuccess();
        (await mallory.PutAsync($"{V3}/user/{E(mallory.UserId)}/rooms/{E(publicRoom)}/account_data/org.example.hostile", hostile)).EnsureSuccess();
        (await mallory.PutAsync($"{V3}/user/{E(mallory.UserId)}/rooms/{E(publicRoom)}/tags/{E(HostileStrings[3])}", new { order = 0.5 })).EnsureSuccess();
        (await mallory.PostAsync($"{Room(publicRoom)}/receipt/m.read/{E(secondId)}", new { thread_id = HostileStrings[2] })).EnsureSuccess();
        (await mallory.PostAsync($"{Room(publicRoom)}/read_markers", new JsonObject { ["m.fully_read"] = secondId })).EnsureSuccess();
        (await mallory.PutAsync($"{Room(publicRoom)}/typing/{E(mallory.UserId)}", new { typing = true, timeout = 30000 })).EnsureSuccess();
        (await mallory.PutAsync($"{V3}/sendToDevice/org.example.hostile/d1",
            new JsonObject { ["messages"] = new JsonObject { [alice.UserId] = new JsonObject { ["*"] = HostileObject() } } })).EnsureSuccess();
        (await mallory.PutAsync($"{V3}/devices/{E(mallory.DeviceId)}", new { display_name = HostileStrings[2] + HostileStrings[3] })).EnsureSuccess();
        (await mallory.PutAsync($"{V3}/presence/{E(mallory.UserId)}/status", new { presence = "online", status_msg = HostileStrings[4] })).EnsureSuccess();
        var filter = new JsonObject { ["event_fields"] = new JsonArray("content.body", HostileStrings[2]), ["org.example"] = HostileObject() };
        var filterId = (await mallory.PostAsync($"{V3}/user/{E(mallory.UserId)}/filter", filter)).EnsureSuccess()["filter_id"].GetValue<string>();

        // Data the boundary would refuse now but an older server stored: \u0000 in events' JSON text, the content that
        // once made the user directory answer 500 for everyone.
        await using (var db = NpgsqlDataSource.Create(_cluster.ConnectionString))
        {
            await using var poison = db.CreateCommand(
                """
                UPDATE events SET json = replace(json, '"content":{"', '"content":{"poison":"a\u0000b","\u0000":1,"')
                 WHERE room_id = ANY($1) AND (type IN ('m.room.join_rules', 'm.room.message', 'm.room.name'))
                """);
            poison.Parameters.AddWithValue(new[] { publicRoom, privateRoom });
            Assert.True(await poison.ExecuteNonQueryAsync() >= 4);
        }
        await mallory.SendTextAsync(publicRoom, "after the poison");

        var failures = new List<string>();
        foreach (var reader in new[] { alice, mallory.On(_cluster.Silos[1]), mallory })
        {
            string ValueOf(string parameter) => E(parameter switch
            {
                "roomId" or "roomIdOrAlias" => publicRoom,
                "eventId" => secondId,
                "userId" => mallory.UserId,
                "eventType" => "m.room.name",
                "stateKey" => "",
                "type" => "org.example.hostile",
                "filterId" => filterId,
                "deviceId" => reader.DeviceId,
                "scope" => "global",
                "kind" => "override",
                "ruleId" => ".m.rule.master",
                _ => "x",
            });
            foreach (var endpoint in RouteTable.Of(reader.Silo).Where(e => e.Method == "GET"))
            {
                var path = endpoint.Path(ValueOf);
                await ExpectAnswerAsync(reader, HttpMethod.Get, path, null, failures);
                if (path.Contains(E(publicRoom))) await ExpectAnswerAsync(reader, HttpMethod.Get, path.Replace(E(publicRoom), E(privateRoom)), null, failures);
            }
            // The reads that are POSTs.
            foreach (var term in new[] { "mallory", HostileStrings[2], "\\", "%", "_", "ü" })
                await ExpectAnswerAsync(reader, HttpMethod.Post, $"{V3}/user_directory/search", new JsonObject { ["search_term"] = term }, failures);
            await ExpectAnswerAsync(reader, HttpMethod.Post, $"{V3}/publicRooms", new JsonObject { ["filter"] = new JsonObject { ["generic_search_term"] = HostileStrings[2] } }, failures);
            await ExpectAnswerAsync(reader, HttpMethod.Post, $"{V3}/keys/query", new JsonObject { ["device_keys"] = new JsonObject { [mallory.UserId] = new JsonArray() } }, failures);
            foreach (var query in new[] { "?timeout=0", "?timeout=0&full_state=true", $"?timeout=0&filter={filterId}",
                         "?timeout=0&filter=" + E("{\"room\":{\"timeline\":{\"limit\":50}}}") })
                await ExpectAnswerAsync(reader, HttpMethod.Get, $"{V3}/sync{query}", null, failures);
            await ExpectAnswerAsync(reader, HttpMethod.Get, $"{Room(publicRoom)}/messages?dir=b&limit=50", null, failures);
            await ExpectAnswerAsync(reader, HttpMethod.Get, $"{Room(publicRoom)}/context/{E(secondId)}?limit=20", null, failures);
        }

        Assert.True(failures.Count == 0, string.Join("\n", failures.Take(40))
            + "\n" + string.Join("\n", _log.Entries.Take(3).Select(e => e.Exception?.ToString() ?? e.Message)));
        var unhandled = _log.Entries.Where(e => e.Category.Contains("MatrixErrorMiddleware")).ToList();
        Assert.True(unhandled.Count == 0, string.Join("\n", unhandled.Take(5).Select(e => e.Exception?.ToString() ?? e.Message)));
        // Alice's sync holds Mallory's message as sent (the boundary's checks did not mangle accepted content).
        var sync = (await alice.GetAsync($"{V3}/sync?timeout=0")).EnsureSuccess();
        var events = sync["rooms"]["join"]?[publicRoom]?["timeline"]?["events"]?.AsArray() ?? [];
        Assert.Contains(events, e => e?["content"]?["body"]?.GetValue<string>() == "after the poison");

    }

    private static async Task<string> SendAsync(MatrixTestClient user, string roomId, string path, JsonObject content)
    {
        if (path.StartsWith("send/", StringComparison.Ordinal) && path.Count(c => c == '/') == 1) path += "/" + Guid.NewGuid().ToString("N");
        return (await user.PutAsync($"{Room(roomId)}/{path}", content)).EnsureSuccess()["event_id"].GetValue<string>();
    }

    private static async Task ExpectAnswerAsync(MatrixTestClient reader, HttpMethod method, string path, JsonObject? body, List<string> failures)
    {
        using var request = new HttpRequestMessage(method, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", reader.AccessToken);
        if (body is not null) request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
        using var response = await reader.Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        if ((int)response.StatusCode >= 500 || (int)response.StatusCode >= 400 && !text.Contains("\"errcode\""))
            failures.Add($"{reader.UserId} {method} {path}: {(int)response.StatusCode} {text[..Math.Min(200, text.Length)]}");
        else if (response.Content.Headers.ContentType?.MediaType == "application/json" && text.Length > 0)
            JsonNode.Parse(text); // what the server sends parses
    }
}

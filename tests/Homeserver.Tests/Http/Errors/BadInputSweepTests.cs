using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Homeserver.Tests.Http.Errors;

/// <summary>
/// Every endpoint the app maps (read from its own endpoint data source, so a new endpoint is covered without touching
/// this file) gets the malformed shapes a hostile client sends: bodies that are not JSON, the wrong JSON type, invalid
/// UTF-8, lone surrogates, NUL, deep nesting, too large, fields of the wrong type; garbage path ids and query
/// parameters; no token or a bad one. Every answer is below 500, every error a Matrix error; every malformed body is a
/// 4xx; and afterwards the well-formed requests still work and the server logged no unhandled exception.
/// </summary>
public sealed class BadInputSweepTests(ITestOutputHelper output) : IAsyncLifetime
{
    private readonly ErrorLogCapture _log = new();
    private HomeserverTestCluster _cluster = null!;

    public async Task InitializeAsync() => _cluster = await HomeserverTestCluster.StartAsync(silos: 1, configure: _log.AddTo);
    public async Task DisposeAsync() => await _cluster.DisposeAsync();


    [Fact]
    public async Task Every_endpoint_answers_every_malformed_shape_with_a_matrix_error_and_keeps_working()
    {
        var silo = _cluster.Silos[0];
        var owner = await MatrixTestClient.RegisterAsync(silo, MatrixTestClient.UniqueLocalpart("owner"));
        var roomId = await owner.CreateRoomAsync(new { preset = "public_chat" });
        var eventId = await owner.SendTextAsync(roomId, "hello");

        var targets = RouteTable.Of(silo);
        Assert.True(targets.Count > 60, $"only {targets.Count} endpoints found");
        var failures = new List<string>();
        var requests = 0;

        // A few endpoints at a time, each with a fresh user (some endpoints log out or deactivate their caller).
        foreach (var chunk in targets.Chunk(4))
        {
            var results = await Task.WhenAll(chunk.Select(async target =>
            {
                var user = await MatrixTestClient.RegisterAsync(silo, MatrixTestClient.UniqueLocalpart("sweep"));
                await user.JoinAsync(roomId);
                var sweep = new EndpointSweep(silo, target, user, roomId, eventId);
                await sweep.RunAsync();
                return sweep;
            }));
            foreach (var sweep in results)
            {
                failures.AddRange(sweep.Failures);
                requests += sweep.Requests;
            }
            await AssertStillWorksAsync(owner, roomId, eventId);
        }
        output.WriteLine($"{targets.Count} endpoints, {requests} malformed requests");

        Assert.True(failures.Count == 0, $"{failures.Count} bad answers:\n{string.Join("\n", failures.Take(60))}");
        var unhandled = _log.Entries.Where(e => e.Category.Contains("MatrixErrorMiddleware")).ToList();
        Assert.True(unhandled.Count == 0, "unhandled exceptions:\n" + string.Join("\n", unhandled.Take(10).Select(e => e.Exception?.ToString() ?? e.Message)));
    }

    /// <summary>Well-formed requests of the main kinds still work (on this server, for an uninvolved user).</summary>
    private static async Task AssertStillWorksAsync(MatrixTestClient owner, string roomId, string eventId)
    {
        (await owner.GetAsync($"{MatrixPaths.V3}/account/whoami")).EnsureSuccess();
        var sent = await owner.SendTextAsync(roomId, "still here");
        Assert.Equal(sent, (await owner.GetAsync(MatrixPaths.Event(roomId, sent))).EnsureSuccess()["event_id"].GetValue<string>());
        Assert.Equal(eventId, (await owner.GetAsync(MatrixPaths.Event(roomId, eventId))).EnsureSuccess()["event_id"].GetValue<string>());
        (await owner.GetAsync($"{MatrixPaths.V3}/sync?timeout=0")).EnsureSuccess();
    }

    /// <summary>The malformed requests for one endpoint, and what came back wrong.</summary>
    private sealed class EndpointSweep(TestSilo silo, MappedEndpoint target, MatrixTestClient user, string roomId, string eventId)
    {
        public List<string> Failures { get; } = [];
        public int Requests { get; private set; }
        // Latin-1 headers: the client sends the odd bytes of a hostile token as they are.
        private readonly HttpClient _http = new(new SocketsHttpHandler { RequestHeaderEncodingSelector = (_, _) => Encoding.Latin1 })
        {
            BaseAddress = new Uri(silo.BaseUrl),
            Timeout = TimeSpan.FromSeconds(30),
        };
        private int _txn;

        private static readonly string[] FieldNames =
        [
            "body", "msgtype", "type", "user_id", "room_id", "content", "device_id", "password", "auth", "reason", "visibility",
            "invite", "initial_state", "name", "topic", "preset", "room_version", "creation_content", "power_level_content_override",
            "messages", "device_keys", "one_time_keys", "fallback_keys", "displayname", "avatar_url", "presence", "status_msg",
            "typing", "timeout", "search_term", "limit", "filter", "thread_id", "m.fully_read", "m.read", "m.read.private",
            "order", "actions", "conditions", "pattern", "devices", "new_password", "logout_devices", "identifier", "user",
            "since", "server", "keys", "signatures", "master_key", "self_signing_key", "user_signing_key", "username",
            "inhibit_login", "initial_device_display_name", "display_name", "event_id", "include_all_networks",
            "third_party_instance_id", "erase", "id_server", "session", "account_data", "room", "presence", "event_fields",
        ];

        private static readonly JsonNode?[] WrongValues =
        [
            JsonValue.Create(12345678901234567L), JsonValue.Create(-1.5), JsonValue.Create(true), new JsonArray(1, "x", null),
            new JsonObject { ["a"] = new JsonObject { ["b"] = 1 } }, JsonValue.Create(""), JsonValue.Create(new string('x', 4000)), null,
        ];

        public async Task RunAsync()
        {
            await BodyShapesAsync();
            await PathShapesAsync();
            await QueryShapesAsync();
            await TokenShapesAsync();
        }

        private async Task BodyShapesAsync()
        {
            var path = Path(_ => null);
            var malformed = new (string Name, byte[] Body)[]
            {
                ("not JSON", Encoding.UTF8.GetBytes("{\"a\": ")),
                ("not JSON (text)", Encoding.UTF8.GetBytes("hello")),
                ("a JSON array", Encoding.UTF8.GetBytes("[1,2]")),
                ("a JSON string", Encoding.UTF8.GetBytes("\"x\"")),
                ("a JSON number", Encoding.UTF8.GetBytes("42")),
                ("JSON null", Encoding.UTF8.GetBytes("null")),
                ("invalid UTF-8", [.. Encoding.UTF8.GetBytes("{\"body\":\""), 0xFF, 0xFE, .. Encoding.UTF8.GetBytes("\"}")]),
                ("an encoded surrogate", [.. Encoding.UTF8.GetBytes("{\"body\":\""), 0xED, 0xA0, 0x80, .. Encoding.UTF8.GetBytes("\"}")]),
                ("a lone surrogate", Encoding.UTF8.GetBytes("{\"body\":\"a\\ud800b\",\"msgtype\":\"m.text\"}")),
                ("a lone low surrogate", Encoding.UTF8.GetBytes("{\"x\\udc00\":1}")),
                ("NUL in a string", Encoding.UTF8.GetBytes("{\"body\":\"a\\u0000b\",\"msgtype\":\"m.text\"}")),
                ("NUL in a key", Encoding.UTF8.GetBytes("{\"a\\u0000\":1}")),
                ("deep nesting", Encoding.UTF8.GetBytes("{\"content\":" + new string('[', 100) + new string(']', 100) + "}")),
                ("deep objects", Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("{\"a\":", 100)) + "1" + new string('}', 100))),
                ("a duplicate key", Encoding.UTF8.GetBytes("{\"a\":1,\"a\":2}")),
                ("too large", Encoding.UTF8.GetBytes("{\"body\":\"" + new string('x', target.MaxBodyBytes) + "\"}")),
            };
            foreach (var (name, body) in malformed)
                await ExpectAsync($"body {name}", await SendAsync(path, body, user.AccessToken, chunked: false), must4xx: true);
            // The same too large body without a declared length.
            await ExpectAsync("body too large (chunked)", await SendAsync(path, malformed[^1].Body, user.AccessToken, chunked: true), must4xx: true);

            if (target.Method is "GET") return;
            for (var variant = 0; variant < WrongValues.Length; variant++)
            {
                var bag = new JsonObject();
                for (var i = 0; i < FieldNames.Length; i++) bag[FieldNames[i]] = WrongValues[(i + variant) % WrongValues.Length]?.DeepClone();
                await ExpectAsync($"fields of the wrong types (variant {variant})", await SendAsync(Path(_ => null), Utf8(bag), user.AccessToken));
            }
            foreach (var field in FieldNames)
            {
                var value = WrongValues[(field.Length + field[0]) % WrongValues.Length]?.DeepClone();
                await ExpectAsync($"'{field}' of the wrong type", await SendAsync(Path(_ => null), Utf8(new JsonObject { [field] = value }), user.AccessToken));
            }
        }

        private async Task PathShapesAsync()
        {
            string[] garbage =
            [
                "!", "%21%3A", "x%2F..%2F..", "%E2%80%AE%F0%9F%98%80", "%ED%A0%80", "%FF%FE", "@:", "$", "..", "%20",
                new string('a', 2000), new string('b', 9000),
            ];
            var parameters = target.Pattern.Parameters.Select(p => p.Name).ToList();
            foreach (var parameter in parameters)
                foreach (var value in garbage)
                    await ExpectAsync($"path {parameter}={Short(value)}",
                        await SendAsync(Path(name => name == parameter ? value : null), DefaultBody(), user.AccessToken));
        }

        private async Task QueryShapesAsync()
        {
            string[] queries =
            [
                "limit=-1", "limit=abc", "limit=99999999999999999999", "from=garbage", "from=s99999_0", "to=%00x", "dir=q", "timeout=abc",
                "timeout=-5", "since=garbage", "since=s1_2_3_4_5_6_7_8_9", "filter=%7Bbad", "filter=%7B%22room%22%3A5%7D",
                "filter=%5B1%5D", "filter=12345", "kind=x", "format=x", "full_state=maybe", "set_presence=x", "server_name=%00",
                "via=%00", "x=%00", "%00=1", "membership=x", "not_membership=x", "at=garbage", "access_token=%00",
                "limit=1&limit=2", "user_id=%FF", "filter=" + Uri.EscapeDataString("{\"room\":{\"timeline\":{\"limit\":\"x\"}}}"),
            ];
            foreach (var query in queries)
                await ExpectAsync($"query {query}", await SendAsync(Path(_ => null) + "?" + query, DefaultBody(), user.AccessToken));
        }

        private async Task TokenShapesAsync()
        {
            await ExpectAsync("no token", await SendAsync(Path(_ => null), DefaultBody(), null));
            await ExpectAsync("a bad token", await SendAsync(Path(_ => null), DefaultBody(), "syt_garbage"));
            await ExpectAsync("a token of odd bytes", await SendAsync(Path(_ => null), DefaultBody(), "\u00ff\u00fe\u00e9"));
        }

        private byte[]? DefaultBody() => target.Method is "GET" ? null : Encoding.UTF8.GetBytes("{}");

        /// <summary>The endpoint's path with real ids (or <paramref name="garbage"/>'s value for one parameter).</summary>
        private string Path(Func<string, string?> garbage) =>
            target.Path(name => garbage(name) ?? Uri.EscapeDataString(RealValue(name)));

        private string RealValue(string parameter) => parameter switch
        {
            "roomId" or "roomIdOrAlias" => roomId,
            "eventId" => eventId,
            "userId" => user.UserId,
            "roomAlias" => "#sweep" + user.UserId.GetHashCode().ToString("x") + ":localhost",
            "eventType" => "m.room.message",
            "txnId" => $"t{Interlocked.Increment(ref _txn)}",
            "stateKey" => "",
            "receiptType" => "m.read",
            "type" => "org.example.sweep",
            "tag" => "u.sweep",
            "deviceId" => user.DeviceId,
            "scope" => "global",
            "kind" => "override",
            "ruleId" => "org.example.rule",
            "filterId" => "0",
            _ => "x",
        };

        private async Task<HttpResponseMessage?> SendAsync(string path, byte[]? body, string? token, bool chunked = false)
        {
            Requests++;
            using var request = new HttpRequestMessage(new HttpMethod(target.Method), path);
            if (token is not null) request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + token);
            if (body is not null)
            {
                request.Content = chunked ? new StreamContent(new MemoryStream(body)) : new ByteArrayContent(body);
                request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            }
            try
            {
                var response = await _http.SendAsync(request);
                await response.Content.LoadIntoBufferAsync();
                return response;
            }
            catch (HttpRequestException) when (body is { Length: > 60_000 })
            {
                // A server may answer 413 and close the connection before a large upload ends; the client sees a reset.
                return null;
            }
        }

        private async Task ExpectAsync(string shape, HttpResponseMessage? response, bool must4xx = false)
        {
            if (response is null) return;
            using (response)
            {
                var status = (int)response.StatusCode;
                var text = await response.Content.ReadAsStringAsync();
                string? problem = null;
                if (status >= 500) problem = "server error";
                else if (must4xx && status is < 400 or >= 500) problem = "accepted";
                else if (status >= 400)
                {
                    JsonNode? json = null;
                    try { json = JsonNode.Parse(text); }
                    catch (System.Text.Json.JsonException) { }
                    if (response.Content.Headers.ContentType?.MediaType != "application/json") problem = "not application/json";
                    // A user-interactive authentication challenge is a 401 with flows (spec: "User-interactive API").
                    else if (status == 401 && json?["flows"] is JsonArray) problem = null;
                    else if (json?["errcode"] is not JsonValue code || !code.TryGetValue<string>(out _) || json["error"] is not JsonValue)
                        problem = "not a Matrix error";
                    else if (text.Length > 2048) problem = $"an error of {text.Length} characters";
                }
                if (problem is not null)
                    lock (Failures) Failures.Add($"{target.Name} [{shape}]: {problem}, {status} {Short(text)}");
            }
        }

        private static byte[] Utf8(JsonNode node) => Encoding.UTF8.GetBytes(node.ToJsonString());
        private static string Short(string s) => s.Length <= 160 ? s : s[..160] + "…";
    }
}

using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.Compatibility;

/// <summary>r0 paths, the unstable cross-signing paths and the exact JSON content type.</summary>
public sealed class LegacyPathTests : IAsyncLifetime
{
    private HomeserverTestCluster _cluster = null!;

    public async Task InitializeAsync() => _cluster = await HomeserverTestCluster.StartAsync(1);
    public async Task DisposeAsync() => await _cluster.DisposeAsync();

    [Fact]
    public async Task A_client_on_r0_paths_registers_creates_a_room_sends_and_syncs()
    {
        var http = _cluster.Silos[0].Http;
        var register = (await http.PostJsonAsync("/_matrix/client/r0/register", new JsonObject
        {
            ["username"] = MatrixTestClient.UniqueLocalpart("r0"),
            ["password"] = MatrixTestClient.DefaultPassword,
            ["auth"] = new JsonObject { ["type"] = "m.login.dummy" },
        })).EnsureSuccess();
        var token = register["access_token"].GetValue<string>();
        var room = (await http.PostJsonAsync("/_matrix/client/r0/createRoom", new JsonObject(), token)).EnsureSuccess()["room_id"].GetValue<string>();
        var sent = (await http.PutJsonAsync($"/_matrix/client/r0/rooms/{Uri.EscapeDataString(room)}/send/m.room.message/r0txn",
            new JsonObject { ["msgtype"] = "m.text", ["body"] = "over r0" }, token)).EnsureSuccess();
        var sync = (await http.GetJsonAsync("/_matrix/client/r0/sync", token)).EnsureSuccess();
        Assert.Contains(sync.RoomEvents(room, "timeline"), e => e?["event_id"]?.GetValue<string>() == sent["event_id"].GetValue<string>());
        // A path that never existed is the same 404 under r0 as under v3.
        var unknown = await http.GetJsonAsync("/_matrix/client/r0/no/such/endpoint", token);
        Assert.Equal(404, unknown.StatusCode);
        Assert.Equal("M_UNRECOGNIZED", unknown.ErrCode);
    }

    [Fact]
    public async Task Cross_signing_uploads_answer_on_their_unstable_paths()
    {
        var alice = await MatrixTestClient.RegisterAsync(_cluster.Silos[0]);
        var r = await alice.PostAsync("/_matrix/client/unstable/keys/signatures/upload", new JsonObject());
        Assert.Equal(200, r.StatusCode);
        var versions = (await _cluster.Silos[0].Http.GetJsonAsync("/_matrix/client/versions")).EnsureSuccess();
        Assert.Contains(versions["versions"].AsArray(), v => v!.GetValue<string>() == "r0.6.1");
    }

    [Theory]
    [InlineData("GET", "/_matrix/client/versions")]
    [InlineData("GET", "/_matrix/client/v3/no/such/endpoint")]
    [InlineData("POST", "/_matrix/client/v3/login")]
    public async Task Json_answers_carry_exactly_application_json(string method, string path)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (method == "POST") request.Content = new StringContent("{}", System.Text.Encoding.UTF8, "application/json");
        using var response = await _cluster.Silos[0].Http.SendAsync(request);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.ToString());
    }

    [Fact]
    public async Task Sync_and_messages_answers_carry_exactly_application_json()
    {
        var alice = await MatrixTestClient.RegisterAsync(_cluster.Silos[0]);
        var room = await alice.CreateRoomAsync();
        foreach (var path in new[] { $"{MatrixPaths.V3}/sync", $"{MatrixPaths.Room(room)}/messages?dir=b", $"{MatrixPaths.V3}/account/whoami" })
        {
            using var response = await alice.Http.GetAsync(path);
            Assert.Equal("application/json", response.Content.Headers.ContentType?.ToString());
        }
    }

    [Fact]
    public async Task A_message_posted_without_a_transaction_id_is_sent_once_each_time()
    {
        var alice = await MatrixTestClient.RegisterAsync(_cluster.Silos[0]);
        var room = await alice.CreateRoomAsync();
        var first = (await alice.PostAsync($"/_matrix/client/r0/rooms/{Uri.EscapeDataString(room)}/send/m.room.message",
            new JsonObject { ["msgtype"] = "m.text", ["body"] = "posted" })).EnsureSuccess()["event_id"].GetValue<string>();
        var second = (await alice.PostAsync($"{MatrixPaths.Room(room)}/send/m.room.message",
            new JsonObject { ["msgtype"] = "m.text", ["body"] = "posted" })).EnsureSuccess()["event_id"].GetValue<string>();
        Assert.NotEqual(first, second);
        var history = (await alice.GetAsync($"{MatrixPaths.Room(room)}/messages?dir=b&limit=5")).EnsureSuccess();
        var ids = history["chunk"].AsArray().Select(e => e!["event_id"]!.GetValue<string>()).ToList();
        Assert.Equal([second, first], ids.Take(2));
    }
}

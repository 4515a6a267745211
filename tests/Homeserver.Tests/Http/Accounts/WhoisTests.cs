using System.Diagnostics;
using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using Npgsql;

namespace Homeserver.Tests.Http.Accounts;

/// <summary>A 2-silo cluster with one admin and a short client IP flush period, so cross-silo visibility is quick.</summary>
public sealed class WhoisCluster : TwoSiloCluster
{
    public const string AdminLocalpart = "whois-admin";
    public static readonly TimeSpan FlushPeriod = TimeSpan.FromSeconds(1);

    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?>
    {
        ["Homeserver:AdminUsers:0"] = $"@{AdminLocalpart}:localhost",
        ["Homeserver:ClientIpFlushPeriod"] = FlushPeriod.ToString(),
    };
}

/// <summary>
/// Client IP tracking (spec: "Server Administration" whois; last_seen_ip / last_seen_ts of "Device Management"):
/// who may ask, the response's shape, connections visible at once on the silo that served them and after the flush
/// period on the other, and deleted devices taking their connections with them.
/// </summary>
public sealed class WhoisTests(WhoisCluster fixture) : IClassFixture<WhoisCluster>
{
    private const string Devices = "/_matrix/client/v3/devices";
    private static readonly TimeSpan CrossSiloTimeout = TimeSpan.FromSeconds(15);

    private static string Whois(string userId) => $"/_matrix/client/v3/admin/whois/{MatrixTestClient.Escape(userId)}";

    /// <summary>An authenticated request with its own User-Agent, so the connection it records can be told apart.</summary>
    private static async Task<string> RequestWithAgentAsync(MatrixTestClient client)
    {
        var agent = $"WhoisTests/{Guid.NewGuid():N}";
        using var request = new HttpRequestMessage(HttpMethod.Get, "/_matrix/client/v3/account/whoami");
        request.Headers.TryAddWithoutValidation("User-Agent", agent);
        using var response = await client.Http.SendAsync(request);
        response.EnsureSuccessStatusCode();
        return agent;
    }

    private static JsonArray Connections(MatrixResponse whois, string deviceId)
    {
        var sessions = whois["devices"][deviceId]!["sessions"]!.AsArray();
        Assert.Single(sessions);
        return sessions[0]!["connections"]!.AsArray();
    }

    private static JsonNode? ConnectionWithAgent(MatrixResponse whois, string deviceId, string agent) =>
        Connections(whois, deviceId).FirstOrDefault(c => c!["user_agent"]!.GetValue<string>() == agent);

    private static async Task<JsonNode?> WaitForConnectionAsync(MatrixTestClient asker, string userId, string deviceId, string agent)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < CrossSiloTimeout)
        {
            if (ConnectionWithAgent((await asker.GetAsync(Whois(userId))).EnsureSuccess(), deviceId, agent) is { } found) return found;
            await Task.Delay(200);
        }
        return null;
    }

    [Fact]
    public async Task Whois_about_oneself_shows_the_requests_connection_at_once()
    {
        var alice = await fixture.UserAsync("whois-self");
        var before = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var agent = await RequestWithAgentAsync(alice);

        var whois = (await alice.GetAsync(Whois(alice.UserId))).EnsureSuccess();
        var after = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

        Assert.Equal(alice.UserId, whois["user_id"].GetValue<string>());
        Assert.Equal([alice.DeviceId], whois["devices"].AsObject().Select(d => d.Key));
        var connection = ConnectionWithAgent(whois, alice.DeviceId, agent);
        Assert.NotNull(connection);
        Assert.Equal("127.0.0.1", connection["ip"]!.GetValue<string>());
        Assert.InRange(connection["last_seen"]!.GetValue<long>(), before, after);
    }

    [Fact]
    public async Task An_admin_sees_every_device_of_another_user()
    {
        var admin = await AdminAsync();
        var bob = await MatrixTestClient.RegisterAsync(fixture.A, MatrixTestClient.UniqueLocalpart("whois-bob"), deviceId: "PHONE");
        var agent = await RequestWithAgentAsync(bob);
        // Logging in is not an authenticated request: this device has recorded no connection.
        await MatrixTestClient.LoginAsync(fixture.A, bob.UserId, bob.Password, deviceId: "LAPTOP");

        var whois = (await admin.GetAsync(Whois(bob.UserId))).EnsureSuccess();

        Assert.Equal(bob.UserId, whois["user_id"].GetValue<string>());
        Assert.Equal(["LAPTOP", "PHONE"], whois["devices"].AsObject().Select(d => d.Key).Order());
        Assert.Empty(Connections(whois, "LAPTOP"));
        var connection = ConnectionWithAgent(whois, "PHONE", agent);
        Assert.NotNull(connection);
        Assert.Equal("127.0.0.1", connection["ip"]!.GetValue<string>());
        // The admin's own request is not bob's.
        Assert.DoesNotContain(Connections(whois, "PHONE"), c => c!["user_agent"]!.GetValue<string>() != agent);
    }

    [Fact]
    public async Task Others_are_forbidden_unknown_users_not_found_and_bad_ids_refused()
    {
        var alice = await fixture.UserAsync("whois-alice");
        var bob = await fixture.UserAsync("whois-bob");
        var admin = await AdminAsync();

        var forbidden = await alice.GetAsync(Whois(bob.UserId));
        Assert.Equal(403, forbidden.StatusCode);
        Assert.Equal("M_FORBIDDEN", forbidden.ErrCode);

        var unknown = await admin.GetAsync(Whois($"@nobody-{Guid.NewGuid():N}:localhost"));
        Assert.Equal(404, unknown.StatusCode);
        Assert.Equal("M_NOT_FOUND", unknown.ErrCode);

        var bad = await alice.GetAsync(Whois("not-a-user-id"));
        Assert.Equal(400, bad.StatusCode);
        Assert.Equal("M_INVALID_PARAM", bad.ErrCode);

        var anonymous = await fixture.A.Http.GetJsonAsync(Whois(alice.UserId));
        Assert.Equal(401, anonymous.StatusCode);
    }

    [Fact]
    public async Task A_connection_reaches_the_other_silo_within_the_flush_period()
    {
        var alice = await fixture.UserAsync("whois-cross");
        var agent = await RequestWithAgentAsync(alice);

        // Written by silo A's periodic flush (B never saw that agent, and nothing stops A): the wait's bound
        // (CrossSiloTimeout, 15 flush periods) is loose on purpose, since on a loaded two-core machine a flush and
        // the reads after it have taken over 5 s.
        var connection = await WaitForConnectionAsync(alice.On(fixture.B), alice.UserId, alice.DeviceId, agent);
        Assert.NotNull(connection);
        Assert.Equal("127.0.0.1", connection["ip"]!.GetValue<string>());
    }

    [Fact]
    public async Task Devices_show_where_they_were_last_seen()
    {
        var alice = await MatrixTestClient.RegisterAsync(fixture.A, MatrixTestClient.UniqueLocalpart("whois-devices"), deviceId: "PHONE");
        await MatrixTestClient.LoginAsync(fixture.A, alice.UserId, alice.Password, deviceId: "LAPTOP");
        var before = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

        var list = (await alice.GetAsync(Devices)).EnsureSuccess()["devices"].AsArray();
        var after = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var phone = list.Single(d => d!["device_id"]!.GetValue<string>() == "PHONE")!;
        Assert.Equal("127.0.0.1", phone["last_seen_ip"]!.GetValue<string>());
        Assert.InRange(phone["last_seen_ts"]!.GetValue<long>(), before, after);
        var laptop = list.Single(d => d!["device_id"]!.GetValue<string>() == "LAPTOP")!.AsObject();
        Assert.False(laptop.ContainsKey("last_seen_ip"));
        Assert.False(laptop.ContainsKey("last_seen_ts"));

        var one = (await alice.GetAsync($"{Devices}/PHONE")).EnsureSuccess();
        Assert.Equal("127.0.0.1", one["last_seen_ip"].GetValue<string>());
        Assert.True(one["last_seen_ts"].GetValue<long>() >= phone["last_seen_ts"]!.GetValue<long>());
    }

    [Fact]
    public async Task A_deleted_device_leaves_whois_with_its_connections()
    {
        var phone = await MatrixTestClient.RegisterAsync(fixture.A, MatrixTestClient.UniqueLocalpart("whois-delete"), deviceId: "PHONE");
        var laptop = await MatrixTestClient.LoginAsync(fixture.A, phone.UserId, phone.Password, deviceId: "LAPTOP");
        var agent = await RequestWithAgentAsync(laptop);
        // Flushed, so the deletion has rows to remove...
        Assert.NotNull(await WaitForConnectionAsync(phone.On(fixture.B), phone.UserId, "LAPTOP", agent));
        // ...and one more most likely still waiting in silo A's batch when the device goes, which its flush must not
        // write back.
        await RequestWithAgentAsync(laptop);

        var session = (await phone.DeleteAsync($"{Devices}/LAPTOP"))["session"].GetValue<string>();
        (await phone.DeleteAsync($"{Devices}/LAPTOP", new JsonObject
        {
            ["auth"] = new JsonObject
            {
                ["type"] = "m.login.password",
                ["identifier"] = new JsonObject { ["type"] = "m.id.user", ["user"] = phone.UserId },
                ["password"] = phone.Password,
                ["session"] = session,
            },
        })).EnsureSuccess();

        foreach (var silo in new[] { fixture.A, fixture.B })
        {
            var whois = (await phone.On(silo).GetAsync(Whois(phone.UserId))).EnsureSuccess();
            Assert.Equal(["PHONE"], whois["devices"].AsObject().Select(d => d.Key));
        }
        await Task.Delay(WhoisCluster.FlushPeriod * 3);
        Assert.Equal(0, await StoredConnectionsAsync(phone.UserId, "LAPTOP"));
        Assert.True(await StoredConnectionsAsync(phone.UserId, "PHONE") > 0);
    }

    private async Task<long> StoredConnectionsAsync(string userId, string deviceId)
    {
        await using var cmd = fixture.A.Get<NpgsqlDataSource>().CreateCommand(
            "SELECT count(*) FROM client_ips WHERE user_id = $1 AND device_id = $2");
        cmd.Parameters.AddWithValue(userId);
        cmd.Parameters.AddWithValue(deviceId);
        return (long)(await cmd.ExecuteScalarAsync())!;
    }

    /// <summary>The configured admin: registered by the first test that needs it (the class's tests share the
    /// fixture's database and run one at a time), logged into by the others.</summary>
    private async Task<MatrixTestClient> AdminAsync()
    {
        var available = await fixture.A.Http.GetJsonAsync($"/_matrix/client/v3/register/available?username={WhoisCluster.AdminLocalpart}");
        return available.StatusCode == 200
            ? await MatrixTestClient.RegisterAsync(fixture.A, WhoisCluster.AdminLocalpart)
            : await MatrixTestClient.LoginAsync(fixture.A, WhoisCluster.AdminLocalpart);
    }
}

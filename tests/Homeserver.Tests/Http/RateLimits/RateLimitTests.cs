using System.Diagnostics;
using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Http.RateLimits.RateLimitTestSupport;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.RateLimits;

/// <summary>Two silos, each its own front end, with small per-user limits; registration and the login address
/// limit raised out of the way (every test registers from one address).</summary>
public sealed class RateLimitCluster : TwoSiloCluster
{
    public const string AdminLocalpart = "ratelimit-admin";
    public const int MessageBurst = 20;
    public const double MessagePerSecond = 1;

    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?>
    {
        ["Homeserver:RateLimits:Enabled"] = "true",
        ["Homeserver:AdminUsers:0"] = $"@{AdminLocalpart}:localhost",
        ["Homeserver:RateLimits:Registration:Burst"] = "1000",
        ["Homeserver:RateLimits:LoginAddress:Burst"] = "1000",
        ["Homeserver:RateLimits:LoginAccount:Burst"] = "1000",
        ["Homeserver:RateLimits:Message:Burst"] = MessageBurst.ToString(),
        ["Homeserver:RateLimits:Message:PerSecond"] = MessagePerSecond.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["Homeserver:RateLimits:LoginFailedAttempts:Burst"] = "3",
        ["Homeserver:RateLimits:LoginFailedAttempts:PerSecond"] = "0.2",
        ["Homeserver:RateLimits:Joins:Burst"] = "2",
        ["Homeserver:RateLimits:Joins:PerSecond"] = "0.001",
        ["Homeserver:RateLimits:InvitesPerUser:Burst"] = "2",
        ["Homeserver:RateLimits:InvitesPerUser:PerSecond"] = "0.001",
        ["Homeserver:RateLimits:MediaCreate:Burst"] = "2",
        ["Homeserver:RateLimits:MediaCreate:PerSecond"] = "0.001",
    };
}

public sealed class RateLimitTests(RateLimitCluster fixture) : IClassFixture<RateLimitCluster>
{
    private static string Send(string roomId) => $"{Room(roomId)}/send/m.room.message/{Guid.NewGuid():N}";

    [Fact]
    public async Task Sends_past_the_burst_are_429_with_retry_after_ms_and_succeed_again_after_it()
    {
        var alice = await fixture.UserAsync("rl-send");
        var room = await alice.CreateRoomAsync();
        var sent = 0;
        var clock = Stopwatch.StartNew();
        MatrixResponse r;
        while ((r = await alice.PutAsync(Send(room), Text($"m{sent}"))).StatusCode == 200 && sent < 3 * RateLimitCluster.MessageBurst) sent++;
        var retry = AssertLimited(r);
        // The burst, plus what refilled while sending (1 a second).
        Assert.InRange(sent, RateLimitCluster.MessageBurst - 1, RateLimitCluster.MessageBurst + RateLimitCluster.MessagePerSecond * clock.Elapsed.TotalSeconds);
        Assert.InRange(retry, 1, 1000 / RateLimitCluster.MessagePerSecond);

        await Task.Delay(TimeSpan.FromMilliseconds(retry + 50));
        var sinceWait = Stopwatch.StartNew();
        (await alice.PutAsync(Send(room), Text("after the wait"))).EnsureSuccess();
        // A state event counts against the same limit, and it is spent again: state events are limited once what refilled
        // meanwhile is spent (on a slow machine a request may take long enough for another token to come).
        var accepted = 0;
        while ((r = await alice.PutAsync($"{Room(room)}/state/m.room.topic/", new JsonObject { ["topic"] = $"t{accepted}" })).StatusCode == 200
               && accepted < 20)
            accepted++;
        AssertLimited(r);
        // At most what refilled since the wait, and one lease a front end may have taken ahead (a tenth of the burst).
        Assert.InRange(accepted, 0, RateLimitCluster.MessageBurst / 10 + RateLimitCluster.MessagePerSecond * sinceWait.Elapsed.TotalSeconds);
    }

    [Fact]
    public async Task Alternating_between_two_front_ends_a_user_gets_the_burst_once_within_one_lease_per_front_end()
    {
        var alice = await fixture.UserAsync("rl-cluster");
        var onB = alice.On(fixture.B);
        var room = await alice.CreateRoomAsync();
        var clock = Stopwatch.StartNew();
        var accepted = 0;
        for (var i = 0; i < 3 * RateLimitCluster.MessageBurst; i++)
        {
            var r = await (i % 2 == 0 ? alice : onB).PutAsync(Send(room), Text($"m{i}"));
            if (r.StatusCode == 200) accepted++;
            else AssertLimited(r);
        }
        var elapsed = clock.Elapsed.TotalSeconds;
        // Two front ends each enforcing the limit alone would accept about 2 × 20. The cluster's one bucket accepts the
        // burst plus its refill; front ends lease a tenth of the burst (2), so each may leave one unspent.
        var allowance = RateLimitCluster.MessageBurst + RateLimitCluster.MessagePerSecond * elapsed;
        Assert.True(accepted <= allowance + 0.001, $"accepted {accepted} of an allowance of {allowance:F1} in {elapsed:F1} s");
        Assert.True(accepted >= RateLimitCluster.MessageBurst - 2, $"accepted {accepted}, fewer than the burst less one lease per front end");
    }

    [Fact]
    public async Task A_server_admin_is_not_limited()
    {
        var admin = await MatrixTestClient.RegisterAsync(fixture.A, $"{RateLimitCluster.AdminLocalpart}");
        var room = await admin.CreateRoomAsync();
        for (var i = 0; i < RateLimitCluster.MessageBurst + 10; i++)
            (await admin.PutAsync(Send(room), Text($"m{i}"))).EnsureSuccess();
    }

    [Fact]
    public async Task Failed_logins_to_one_account_are_limited_even_for_the_right_password_then_recover()
    {
        // Three failures spend the burst (0.2 a second refills it). Each failure hashes a password, so on a loaded machine
        // they can take long enough for a token to come back: then the fourth is refused instead, and what must hold is
        // that a login from the other front end right after the first refusal is refused too, whatever its password.
        for (var attempt = 0; ; attempt++)
        {
            var alice = await fixture.UserAsync($"rl-login{attempt}");
            var failures = 0;
            MatrixResponse refused;
            while ((refused = await fixture.A.Http.PostJsonAsync($"{V3}/login", PasswordLogin(alice.UserId, "wrong"))).StatusCode == 403 && failures < 10)
                failures++;
            var firstRetry = AssertLimited(refused);
            Assert.InRange(failures, 3, 9);
            var sinceRefused = Stopwatch.StartNew();
            var fromB = await fixture.B.Http.PostJsonAsync($"{V3}/login", PasswordLogin(alice.UserId, alice.Password));
            if (fromB.StatusCode == 200 && sinceRefused.ElapsedMilliseconds >= firstRetry && attempt < 3) continue; // refilled meanwhile
            var retry = AssertLimited(fromB);
            await Task.Delay(TimeSpan.FromMilliseconds(retry + 50));
            (await fixture.B.Http.PostJsonAsync($"{V3}/login", PasswordLogin(alice.UserId, alice.Password))).EnsureSuccess();
            return;
        }
    }

    [Fact]
    public async Task Joins_and_invites_to_one_user_are_limited()
    {
        var owner = await fixture.UserAsync("rl-owner");
        var joiner = await fixture.UserAsync("rl-joiner");
        var rooms = new List<string>();
        for (var i = 0; i < 3; i++) rooms.Add(await owner.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" }));
        (await joiner.PostAsync($"{V3}/join/{E(rooms[0])}")).EnsureSuccess();
        (await joiner.On(fixture.B).PostAsync($"{V3}/join/{E(rooms[1])}")).EnsureSuccess();
        AssertLimited(await joiner.PostAsync($"{V3}/rooms/{E(rooms[2])}/join"));

        var invitee = await fixture.UserAsync("rl-invitee");
        for (var i = 0; i < 2; i++)
            (await owner.PostAsync($"{Room(rooms[i])}/invite", new JsonObject { ["user_id"] = invitee.UserId })).EnsureSuccess();
        AssertLimited(await owner.PostAsync($"{Room(rooms[2])}/invite", new JsonObject { ["user_id"] = invitee.UserId }));
    }

    [Fact]
    public async Task Media_ids_a_user_makes_are_limited_by_create_and_upload_alike()
    {
        var alice = await fixture.UserAsync("rl-media");
        (await alice.PostAsync("/_matrix/media/v1/create")).EnsureSuccess();
        using var upload = new ByteArrayContent([1, 2, 3]);
        upload.Headers.ContentType = new("application/octet-stream");
        using (var uploaded = await alice.Http.PostAsync("/_matrix/media/v3/upload", upload))
            Assert.Equal(200, (int)uploaded.StatusCode);
        AssertLimited(await alice.PostAsync("/_matrix/media/v1/create"));
    }
}

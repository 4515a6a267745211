using System.Diagnostics;
using Homeserver.Accounts;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Http.RateLimits.RateLimitTestSupport;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.RateLimits;

/// <summary>Limits switched off (with a message limit of one, which would refuse the second send), and passwords
/// hashed at cost 8 so that a password check takes long enough to time.</summary>
public sealed class SlowHashCluster : IAsyncLifetime
{
    public HomeserverTestCluster Cluster { get; private set; } = null!;
    public TestSilo Silo => Cluster.Silos[0];

    public async Task InitializeAsync() => Cluster = await HomeserverTestCluster.StartAsync(silos: 1, new Dictionary<string, string?>
    {
        ["Homeserver:RateLimits:Enabled"] = "false",
        ["Homeserver:RateLimits:Message:Burst"] = "1",
        ["Homeserver:RateLimits:Message:PerSecond"] = "0.001",
        ["Homeserver:PasswordHashCost"] = "8",
    });

    public async Task DisposeAsync()
    {
        if (Cluster is not null) await Cluster.DisposeAsync();
    }
}

public sealed class LoginTimingTests(SlowHashCluster fixture) : IClassFixture<SlowHashCluster>
{
    [Fact]
    public async Task With_limits_switched_off_nothing_is_limited()
    {
        var alice = await MatrixTestClient.RegisterAsync(fixture.Silo);
        var room = await alice.CreateRoomAsync();
        for (var i = 0; i < 5; i++) await alice.SendTextAsync(room, $"m{i}");
    }

    /// <summary>Issue 11: "A login for an unknown user answers in 2 ms and for a wrong password in 202 ms". Timed as
    /// medians of interleaved attempts, with a tolerance noise does not reach: without the stand-in check an unknown
    /// user answered in 14 ms against 1,168 ms for a wrong password (cost 10, a loaded 2-core machine); with it both
    /// take one hash check. The counter shows the check ran, which timing alone cannot.</summary>
    private const int Attempts = 5;

    [Fact]
    public async Task A_login_for_an_unknown_user_takes_as_long_as_a_wrong_password()
    {
        var alice = await MatrixTestClient.RegisterAsync(fixture.Silo);
        var before = PasswordHashing.DummyVerifications;
        var unknown = new List<double>();
        var wrong = new List<double>();
        var invalid = new List<double>();
        for (var i = 0; i < Attempts; i++)
        {
            unknown.Add(await TimeLoginAsync(MatrixTestClient.UniqueLocalpart("nobody"), 403));
            wrong.Add(await TimeLoginAsync(alice.UserId, 403));
            invalid.Add(await TimeLoginAsync("not a valid localpart!", 403));
        }
        var wrongMedian = Median(wrong);
        Assert.True(Median(unknown) >= 0.5 * wrongMedian, $"unknown {Median(unknown):F1} ms, wrong password {wrongMedian:F1} ms");
        Assert.True(Median(invalid) >= 0.5 * wrongMedian, $"invalid name {Median(invalid):F1} ms, wrong password {wrongMedian:F1} ms");
        // And not by chance: the stand-in check ran for each unknown and each invalid name (other tests in this process
        // may add more, never fewer).
        Assert.True(PasswordHashing.DummyVerifications - before >= 2 * Attempts, "the stand-in password check did not run");
    }

    private async Task<double> TimeLoginAsync(string user, int status)
    {
        var clock = Stopwatch.StartNew();
        var r = await fixture.Silo.Http.PostJsonAsync($"{V3}/login", PasswordLogin(user, "not the password"));
        var ms = clock.Elapsed.TotalMilliseconds;
        Assert.Equal(status, r.StatusCode);
        return ms;
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted[sorted.Count / 2];
    }
}

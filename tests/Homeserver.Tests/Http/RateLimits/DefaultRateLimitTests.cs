using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Http.RateLimits.RateLimitTestSupport;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.RateLimits;

/// <summary>A server with Synapse's default limits, as an operator gets it: every test request comes from one address.</summary>
public sealed class DefaultLimitsCluster : IAsyncLifetime
{
    public HomeserverTestCluster Cluster { get; private set; } = null!;
    public TestSilo Silo => Cluster.Silos[0];

    public async Task InitializeAsync() => Cluster = await HomeserverTestCluster.StartAsync(silos: 1,
        new Dictionary<string, string?> { ["Homeserver:RateLimits:Enabled"] = "true" });

    public async Task DisposeAsync()
    {
        if (Cluster is not null) await Cluster.DisposeAsync();
    }
}

/// <summary>
/// Issue 11: "Today 20 wrong passwords in 4 s are all answered 403, and 15 registrations in a burst all succeed."
/// With Synapse's defaults (rc_login.address: burst 5; rc_registration: burst 3) per client address.
/// </summary>
public sealed class DefaultRateLimitTests(DefaultLimitsCluster fixture) : IClassFixture<DefaultLimitsCluster>
{
    [Fact]
    public async Task Twenty_logins_from_one_address_are_refused_after_the_fifth_with_retry_after()
    {
        var statuses = new List<int>();
        MatrixResponse? last = null;
        for (var i = 0; i < 20; i++)
        {
            // A different account each time, so only the address's limit can refuse them.
            last = await fixture.Silo.Http.PostJsonAsync($"{V3}/login", PasswordLogin($"nobody{i}_{Guid.NewGuid():N}", "guess"));
            statuses.Add(last.StatusCode);
        }
        Assert.Equal(Enumerable.Repeat(403, 5).Concat(Enumerable.Repeat(429, 15)), statuses);
        AssertLimited(last!);

        // The header says the same in seconds.
        using var raw = await fixture.Silo.Http.PostAsJsonAsync($"{V3}/login", PasswordLogin("nobody", "guess"));
        Assert.Equal(HttpStatusCode.TooManyRequests, raw.StatusCode);
        Assert.True(raw.Headers.RetryAfter?.Delta > TimeSpan.Zero, "Retry-After header");
        Assert.Equal("application/json", raw.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task Fifteen_registrations_in_a_burst_from_one_address_make_three_accounts()
    {
        var statuses = new List<int>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (var i = 0; i < 15; i++)
        {
            var r = await fixture.Silo.Http.PostJsonAsync($"{V3}/register", DummyRegistration(MatrixTestClient.UniqueLocalpart("burst")));
            statuses.Add(r.StatusCode);
            if (r.StatusCode != 200) AssertLimited(r);
        }
        // The burst, then refusals; the bucket refills one account every 6 s, which a slow machine may reach.
        Assert.Equal([200, 200, 200, 429], statuses.Take(4));
        Assert.True(statuses.Count(s => s == 200) <= 3 + 0.17 * clock.Elapsed.TotalSeconds, string.Join(" ", statuses));
    }
}

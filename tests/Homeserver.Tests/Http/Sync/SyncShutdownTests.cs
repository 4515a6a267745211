using System.Diagnostics;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.Sync;

/// <summary>A front end that stops (a rolling restart) ends its long-polls at once instead of holding them to their
/// timeout, so the shutdown is quick and the clients' next long-poll goes to another front end.</summary>
public sealed class SyncShutdownTests
{
    [Fact]
    public async Task A_long_poll_ends_promptly_when_its_front_end_stops()
    {
        await using var cluster = await HomeserverTestCluster.StartAsync(2);
        var alice = await MatrixTestClient.RegisterAsync(cluster.Silos[0]);
        var since = (await alice.GetAsync($"{V3}/sync?timeout=0")).EnsureSuccess()["next_batch"].GetValue<string>();
        var onB = alice.On(cluster.Silos[1]);

        var poll = onB.GetAsync($"{V3}/sync?timeout=60000&since={Uri.EscapeDataString(since)}");
        await Task.Delay(500);
        Assert.False(poll.IsCompleted, "the long-poll did not wait");
        var clock = Stopwatch.StartNew();
        await cluster.StopSiloAsync(1);
        var answer = await poll.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"stopping took {clock.Elapsed}");
        // Either an (empty) sync answer or a 503 to retry: never an error of the server's own.
        Assert.True(answer.StatusCode is 200 or 503, $"{answer.StatusCode} {answer.Text}");

        // The client's next long-poll, on the other front end, works with the same token.
        (await alice.GetAsync($"{V3}/sync?timeout=0&since={Uri.EscapeDataString(since)}")).EnsureSuccess();
    }
}

using System.Net;
using Homeserver.Accounts;

namespace Homeserver.Tests.Unit;

public sealed class ClientIpBatchTests
{
    private long _now = 1_000;
    private ClientIpBatch NewBatch() => new(() => _now);

    [Fact]
    public void Keeps_the_latest_time_per_key_and_normalises_ipv4_mapped_addresses()
    {
        var batch = NewBatch();
        batch.Record("@a:x", "D", IPAddress.Parse("::ffff:10.0.0.1"), "ua");
        _now = 2_000;
        batch.Record("@a:x", "D", IPAddress.Parse("10.0.0.1"), "ua");
        batch.Record("@a:x", "D", IPAddress.Parse("10.0.0.1"), "other");
        batch.Record("@b:x", "D", null, null);

        var pending = batch.PendingFor("@a:x").OrderBy(e => e.UserAgent, StringComparer.Ordinal).ToList();
        Assert.Equal([new("@a:x", "D", "10.0.0.1", "other", 2_000), new ClientIpBatch.Entry("@a:x", "D", "10.0.0.1", "ua", 2_000)], pending);
        Assert.Equal([new ClientIpBatch.Entry("@b:x", "D", "", "", 2_000)], batch.PendingFor("@b:x"));
    }

    [Fact]
    public void Cuts_long_user_agents_and_replaces_nul()
    {
        var batch = NewBatch();
        batch.Record("@a:x", "D", IPAddress.Loopback, new string('x', 2_000) + "\0");
        batch.Record("@a:x", "E", IPAddress.Loopback, "a\0b");
        var agents = batch.PendingFor("@a:x").ToDictionary(e => e.DeviceId, e => e.UserAgent);
        Assert.Equal(new string('x', ClientIpBatch.MaxUserAgentLength), agents["D"]);
        Assert.Equal("a\uFFFDb", agents["E"]);
    }

    [Fact]
    public async Task A_flush_removes_what_it_wrote_but_keeps_keys_seen_again_meanwhile_and_everything_when_it_fails()
    {
        var batch = NewBatch();
        batch.Record("@a:x", "D", IPAddress.Loopback, "one");
        batch.Record("@a:x", "D", IPAddress.Loopback, "two");

        await Assert.ThrowsAsync<InvalidOperationException>(() => batch.FlushAsync(_ => throw new InvalidOperationException()));
        Assert.Equal(2, batch.PendingFor("@a:x").Count);

        IReadOnlyList<ClientIpBatch.Entry> written = [];
        await batch.FlushAsync(entries =>
        {
            written = entries;
            // Still visible while being written, and seen again before the write completes.
            Assert.Equal(2, batch.PendingFor("@a:x").Count);
            _now = 5_000;
            batch.Record("@a:x", "D", IPAddress.Loopback, "two");
            return Task.CompletedTask;
        });
        Assert.Equal(2, written.Count);
        Assert.Equal([new ClientIpBatch.Entry("@a:x", "D", "127.0.0.1", "two", 5_000)], batch.PendingFor("@a:x"));
    }

    [Fact]
    public async Task A_full_batch_drops_new_keys_asks_for_an_early_flush_and_still_updates_known_ones()
    {
        var batch = NewBatch();
        for (var i = 0; i < ClientIpBatch.MaxPending; i++) batch.Record($"@u{i}:x", "D", IPAddress.Loopback, "ua");
        _now = 9_000;
        batch.Record("@new:x", "D", IPAddress.Loopback, "ua");
        batch.Record("@u0:x", "D", IPAddress.Loopback, "ua");

        Assert.Empty(batch.PendingFor("@new:x"));
        Assert.Equal(9_000, Assert.Single(batch.PendingFor("@u0:x")).LastSeen);
        // Due at once, not after the period.
        var due = batch.WaitUntilFlushDueAsync(TimeSpan.FromMinutes(5), CancellationToken.None);
        Assert.True(due.IsCompleted);
        await due;

        await batch.FlushAsync(_ => Task.CompletedTask);
        batch.Record("@new:x", "D", IPAddress.Loopback, "ua");
        Assert.Single(batch.PendingFor("@new:x"));
    }
}

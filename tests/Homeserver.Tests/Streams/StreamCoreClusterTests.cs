using System.Collections.Concurrent;
using Homeserver.Caches;
using Homeserver.Streams;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Streams;

/// <summary>Two silos over one PostgreSQL: the writer, reader, cache and waiter guarantees of the replication core.</summary>
public sealed class StreamCoreClusterTests(StreamCoreClusterTests.Fixture fixture) : IClassFixture<StreamCoreClusterTests.Fixture>
{
    public sealed class Fixture : TwoSiloCluster
    {
        protected override IDictionary<string, string?> Settings => new Dictionary<string, string?> { ["Homeserver:EventWriters"] = "3" };
    }

    private HomeserverTestCluster Cluster => fixture.Cluster;
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    private IStreamWriterGrain Writer(int silo, string stream, int writer = 0) =>
        Cluster.Silos[silo].Grains.GetGrain<IStreamWriterGrain>(StreamNames.WriterKey(stream, writer));

    private static StreamRow Row(string payload, string? key = null) => new("test", key, $"{{\"p\":\"{payload}\"}}");

    [Fact]
    public async Task Concurrent_appends_get_unique_increasing_positions_and_every_reader_sees_them_in_order()
    {
        var stream = StreamNames.Presence;
        var seen = new[] { new ConcurrentQueue<StreamEntry>(), new ConcurrentQueue<StreamEntry>() };
        for (var s = 0; s < 2; s++)
        {
            var queue = seen[s];
            Cluster.Silos[s].Get<StreamTestHooks>().Applied = e => { if (e.Stream == stream) queue.Enqueue(e); };
        }
        try
        {
            var results = await Task.WhenAll(Enumerable.Range(0, 400).Select(i =>
                Writer(i % 2, stream).AppendAsync(Enumerable.Range(0, 1 + i % 3).Select(r => Row($"{i}-{r}")).ToArray())));

            var positions = results.SelectMany(r => r.Positions).ToList();
            Assert.Equal(positions.Count, positions.Distinct().Count());
            foreach (var r in results)
                Assert.True(r.Positions.Zip(r.Positions.Skip(1)).All(p => p.First < p.Second), "positions within one append increase");

            var last = positions.Max();
            foreach (var s in new[] { 0, 1 })
            {
                var notifier = Cluster.Silos[s].Get<StreamNotifier>();
                Assert.True(await notifier.WaitForTokenAsync(StreamToken.Zero.Advance(stream, 0, last), Wait));
                var applied = seen[s].Where(e => positions.Contains(e.Position)).Select(e => e.Position).ToList();
                Assert.Equal(positions.Order().ToList(), applied);
            }
        }
        finally
        {
            foreach (var silo in Cluster.Silos) silo.Get<StreamTestHooks>().Applied = null;
        }
    }

    [Fact]
    public async Task A_write_through_one_silo_invalidates_the_other_silos_cache_before_its_position_shows_it()
    {
        var cacheB = Cluster.Silos[1].Get<CacheRegistry>().Get<string>("test.profile");
        var generation = cacheB.Generation;
        cacheB.Store("@alice:localhost", "Alice (stale)", generation);
        Assert.True(cacheB.TryGet("@alice:localhost", out _));

        // Record, at the moment silo B's reader applies the row, whether B's position already showed it.
        var notifierB = Cluster.Silos[1].Get<StreamNotifier>();
        long positionWhenApplied = -1;
        Cluster.Silos[1].Get<StreamTestHooks>().Applied = e =>
        {
            if (e.Stream == StreamNames.Caches && e.Payload.Contains("test.profile")) positionWhenApplied = notifierB.Current.Get(StreamNames.Caches, 0);
        };
        try
        {
            var result = await Cluster.Silos[0].Get<CacheInvalidator>().InvalidateAsync("test.profile", "@alice:localhost");
            var target = StreamToken.Zero.Advance(StreamNames.Caches, 0, result.LastPosition);
            Assert.True(await notifierB.WaitForTokenAsync(target, Wait));
            Assert.False(cacheB.TryGet("@alice:localhost", out _));
            Assert.InRange(positionWhenApplied, 0, result.LastPosition - 1);
        }
        finally { Cluster.Silos[1].Get<StreamTestHooks>().Applied = null; }

        // A fill that started before the invalidation must not be cached.
        var before = cacheB.Generation;
        await Cluster.Silos[0].Get<CacheInvalidator>().InvalidateAsync("test.profile", "@bob:localhost").ContinueWith(async t =>
            await notifierB.WaitForTokenAsync(StreamToken.Zero.Advance(StreamNames.Caches, 0, (await t).LastPosition), Wait)).Unwrap();
        cacheB.Store("@bob:localhost", "read before the change", before);
        Assert.False(cacheB.TryGet("@bob:localhost", out _));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_later_commit_is_not_visible_until_the_earlier_one_commits_or_aborts(bool abort)
    {
        var stream = abort ? StreamNames.PushRules : StreamNames.DeviceLists;
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        foreach (var silo in Cluster.Silos)
            silo.Get<StreamTestHooks>().BeforeCommit = async (s, _, entries) =>
            {
                if (s != stream || !entries.Any(e => e.Payload.Contains("slow"))) return;
                entered.TrySetResult();
                await gate.Task;
                if (abort) throw new InvalidOperationException("injected abort");
            };
        try
        {
            var slow = Writer(0, stream).AppendAsync([Row("slow")]);
            await entered.Task.WaitAsync(Wait);
            var fast = await Writer(0, stream).AppendAsync([Row("fast")]);   // acknowledged: committed

            await Task.Delay(300);
            foreach (var silo in Cluster.Silos)
                Assert.True(silo.Get<StreamNotifier>().Current.Get(stream, 0) < fast.LastPosition, "a reader showed a position above an uncommitted one");
            Assert.True((await Writer(1, stream).GetPositionAsync()).Position < fast.LastPosition);

            gate.SetResult();
            if (abort) await Assert.ThrowsAnyAsync<Exception>(() => slow);
            else Assert.True((await slow).LastPosition < fast.LastPosition);

            foreach (var silo in Cluster.Silos)
                Assert.True(await silo.Get<StreamNotifier>().WaitForTokenAsync(StreamToken.Zero.Advance(stream, 0, fast.LastPosition), Wait));
            await using var cmd = Cluster.Database.CreateCommand("SELECT count(*) FROM stream_log WHERE stream = $1 AND payload LIKE '%slow%'");
            cmd.Parameters.AddWithValue(stream);
            Assert.Equal(abort ? 0L : 1L, (long)(await cmd.ExecuteScalarAsync())!);
        }
        finally
        {
            foreach (var silo in Cluster.Silos) silo.Get<StreamTestHooks>().BeforeCommit = null;
        }
    }

    [Fact]
    public async Task A_dropped_notification_is_recovered_by_the_backstop()
    {
        var stream = StreamNames.AccountData;
        var readerB = Cluster.Silos[1].Get<SiloStreamReader>();
        var hooksB = Cluster.Silos[1].Get<StreamTestHooks>();
        var dropped = 0;
        hooksB.DropNotification = a => a.Stream == stream && Interlocked.Increment(ref dropped) > 0;
        try
        {
            var catchUpsBefore = readerB.CatchUps;
            var result = await Writer(0, stream).AppendAsync([Row("dropped", "@u:localhost")]);
            var started = DateTime.UtcNow;
            Assert.True(await Cluster.Silos[1].Get<StreamNotifier>().WaitForTokenAsync(StreamToken.Zero.Advance(stream, 0, result.LastPosition), TimeSpan.FromSeconds(5)));
            var took = DateTime.UtcNow - started;
            Assert.True(dropped > 0, "the notification was not dropped, so nothing was tested");
            Assert.True(readerB.CatchUps > catchUpsBefore);
            // A quiet writer is polled at most MaxBackstopInterval apart; allow for a loaded machine.
            Assert.True(took < SiloStreamReader.MaxBackstopInterval + TimeSpan.FromSeconds(3), $"recovery took {took}");
        }
        finally { hooksB.DropNotification = null; }
    }

    [Fact]
    public async Task An_idle_shard_does_not_pin_the_minimum_of_a_sharded_stream()
    {
        // Writer 0 of events takes positions from the shared sequence; writers 1 and 2 stay idle.
        AppendResult last = null!;
        for (var i = 0; i < 5; i++) last = await Writer(0, StreamNames.Events).AppendAsync([Row($"e{i}")]);
        var notifier = Cluster.Silos[1].Get<StreamNotifier>();
        var deadline = DateTime.UtcNow + Wait;
        while (notifier.Current.Min(StreamNames.Events) < last.LastPosition && DateTime.UtcNow < deadline) await Task.Delay(50);
        Assert.True(notifier.Current.Min(StreamNames.Events) >= last.LastPosition, $"minimum stuck at {notifier.Current.Min(StreamNames.Events)}");
    }

    [Fact]
    public async Task A_shard_gives_back_the_positions_it_took_ahead_when_idle_so_the_minimum_passes_them()
    {
        // Writer 0 keeps spare positions after its appends; writer 1 then appends above them (one shared sequence).
        // The minimum reaches writer 1's row only once writer 0, idle, gives its spares back and claims past them.
        for (var i = 0; i < 3; i++) await Writer(0, StreamNames.Events).AppendAsync([Row($"ahead{i}")]);
        var above = await Writer(0, StreamNames.Events, writer: 1).AppendAsync([Row("above")]);
        await using (var cmd = Cluster.Database.CreateCommand("SELECT last_value FROM stream_seq_events"))
            Assert.True((long)(await cmd.ExecuteScalarAsync())! >= above.LastPosition);
        var notifier = Cluster.Silos[0].Get<StreamNotifier>();
        var deadline = DateTime.UtcNow + Wait;
        while (notifier.Current.Min(StreamNames.Events) < above.LastPosition && DateTime.UtcNow < deadline) await Task.Delay(50);
        Assert.True(notifier.Current.Min(StreamNames.Events) >= above.LastPosition, $"minimum stuck at {notifier.Current.Min(StreamNames.Events)}");
        // Writer 0's next append is above every position handed out before, its given-back spares included.
        var next = await Writer(0, StreamNames.Events).AppendAsync([Row("after")]);
        Assert.True(next.LastPosition > above.LastPosition);
    }

    [Fact]
    public async Task Long_poll_waiter_wakes_on_a_relevant_row_only()
    {
        var notifierB = Cluster.Silos[1].Get<StreamNotifier>();
        var since = notifierB.Current;
        var waiting = notifierB.WaitForChangeAsync(since, ["!room:localhost"], TimeSpan.FromSeconds(20));
        await Writer(0, StreamNames.Receipts).AppendAsync([Row("other", "!other:localhost")]);
        await Task.Delay(300);
        Assert.False(waiting.IsCompleted);
        await Writer(0, StreamNames.Receipts).AppendAsync([Row("mine", "!room:localhost")]);
        Assert.True(await waiting.WaitAsync(Wait));

        // Registered after the change, with the old token: answers at once.
        Assert.True(await notifierB.WaitForChangeAsync(since, ["!room:localhost"], TimeSpan.FromSeconds(20)).WaitAsync(TimeSpan.FromSeconds(1)));
        // Times out when nothing changes.
        Assert.False(await notifierB.WaitForChangeAsync(notifierB.Current, ["!quiet:localhost"], TimeSpan.FromMilliseconds(200)));
        // Cancellation ends the wait.
        using var cts = new CancellationTokenSource(100);
        Assert.False(await notifierB.WaitForChangeAsync(notifierB.Current, ["!quiet:localhost"], TimeSpan.FromSeconds(30), cts.Token));
    }

    [Fact]
    public async Task Status_reports_every_writer_and_every_silo_reader()
    {
        await Writer(0, StreamNames.ToDevice).AppendAsync([Row("status")]);
        var status = await Cluster.Silos[1].Get<ReplicationStatusReader>().GetAsync();
        Assert.Contains(status.Writers, w => w.Stream == StreamNames.ToDevice && w.Position > 0);
        Assert.Equal(3, status.Writers.Count(w => w.Stream == StreamNames.Events));
        Assert.Equal(2, status.Readers.Count);
        Assert.All(status.Readers, r => Assert.Equal(StreamNames.All.Count, r.Positions.Count));
    }
}

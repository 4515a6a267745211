using System.Collections.Concurrent;
using System.Diagnostics;
using Homeserver.Caches;
using Homeserver.Observability;
using Homeserver.Streams;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using Orleans.Runtime;

namespace Homeserver.Streams;

/// <summary>
/// This process's follower of every stream writer (one per silo, and one per front end without a silo: see
/// <see cref="ReaderHost"/>). Learns of new positions by push from the writers (it is registered
/// with each as a grain observer), applies rows strictly in order per writer, runs the row handlers (cache
/// invalidation) before moving its visible position, then wakes the silo's waiters. A notification that does not
/// start where the reader is (a lost or reordered one) makes it catch up from the PostgreSQL log; a periodic
/// backstop asks every writer for its position so a lost notification delays an update but never loses it.
/// </summary>
public sealed class SiloStreamReader(
    IGrainFactory grains,
    NpgsqlDataSource db,
    StreamNotifier notifier,
    CacheRegistry caches,
    IEnumerable<IStreamRowHandler> handlers,
    StreamTestHooks hooks,
    ReaderHost host,
    EventShards shards,
    IOptions<HomeserverOptions> options,
    ILogger<SiloStreamReader> logger) : IStreamReaderObserver, IHostedService, IDisposable
{
    private static readonly TimeSpan RenewPeriod = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The longest a writer goes unpolled, and so the longest a lost last notification of a quiet writer waits to be
    /// recovered. A writer whose polls find nothing is polled half as often each time, from
    /// <see cref="HomeserverOptions.ReaderBackstopPeriod"/> up to this, so an idle cluster costs a call per writer
    /// every few seconds instead of every second. Any sign of trouble (a poll that found a missed notification or a
    /// new activation, a change of cluster membership, an unreachable writer) puts every writer back on the short
    /// period. (A lost notification followed by another from the same writer is recovered at once, as a gap.)
    /// </summary>
    public static readonly TimeSpan MaxBackstopInterval = TimeSpan.FromSeconds(4);

    /// <summary>
    /// How long a notification that does not start where the reader is waits for the one before it. Notifications
    /// are one-way calls and the observer runs them on the thread pool, so under load consecutive ones often arrive
    /// swapped; reading the log for each of those cost a query per gap.
    /// </summary>
    private static readonly TimeSpan GapWait = TimeSpan.FromMilliseconds(10);

    private readonly ConcurrentDictionary<(string Stream, int Writer), Cursor> _cursors = new();
    private readonly ILookup<string, IStreamRowHandler> _handlers = handlers.ToLookup(h => h.Stream, StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();
    private IStreamReaderObserver? _self;
    // The events shard map generation this reader follows (its cursors cover every writer of it), and the newest
    // generation whose barrier it has passed: every writer applied up to where the generation before ended.
    private int _shardGeneration;
    private int _barriersPassed;
    private readonly SemaphoreSlim _following = new(1, 1);
    private readonly SemaphoreSlim _passingBarrier = new(1, 1);
    private Task? _backstop;
    private long _catchUps;

    private sealed class Cursor(string stream, int writer)
    {
        public readonly string Stream = stream;
        public readonly int Writer = writer;
        public readonly SemaphoreSlim Gate = new(1, 1);
        public long Position;
        public long Epoch;
        // Until the starting position is known, notifications are ignored (they are covered by that position).
        public bool Initialised;
        // Notifications that arrived ahead of a gap, by their From (guarded by Gate).
        public readonly SortedList<long, StreamAdvance> Parked = [];
        public bool GapCheckScheduled;
        // Backstop polling (the loop and the poll in flight: one at a time a cursor); a new cursor is due at once.
        public TimeSpan PollInterval;
        public DateTime NextPoll;
        public Task? Poll;
        // A renewal or a membership change came while a poll was in flight: the next poll, at once, takes it.
        public bool RenewDue;
        public bool MembershipDue;
        // For metrics (see CursorStatus): the newest position the writer announced, since when (a Stopwatch timestamp;
        // 0 when caught up) the reader has been behind it, and counts. Bumped with plain interlocked operations.
        public long Known;
        public long BehindSince;
        public long Applied;
        public long CatchUps;
        public long BackstopHits;

        /// <summary>The writer said it reached <paramref name="to"/> (a notification or a poll).</summary>
        public void Announced(long to)
        {
            long known;
            do
            {
                known = Interlocked.Read(ref Known);
                if (to <= known) return;
            } while (Interlocked.CompareExchange(ref Known, to, known) != known);
            if (to > Interlocked.Read(ref Position)) Interlocked.CompareExchange(ref BehindSince, Stopwatch.GetTimestamp(), 0);
        }

        /// <summary>The reader applied up to <paramref name="to"/>.</summary>
        public void Reached(long to)
        {
            if (to < Interlocked.Read(ref Known)) return;
            Interlocked.Exchange(ref BehindSince, 0);
            // An announcement that raced the reset started its own wait before it: keep the reader counted as behind.
            if (to < Interlocked.Read(ref Known)) Interlocked.CompareExchange(ref BehindSince, Stopwatch.GetTimestamp(), 0);
        }
    }

    /// <summary>How many times this reader had to read the log to fill a gap (for tests and metrics).</summary>
    public long CatchUps => Interlocked.Read(ref _catchUps);

    /// <summary>Every cursor's position, lag and counts, for the metrics' observable instruments (read at scrape time).</summary>
    public IEnumerable<ReaderCursorStatus> CursorStatus()
    {
        var now = Stopwatch.GetTimestamp();
        foreach (var c in _cursors.Values)
        {
            var position = Interlocked.Read(ref c.Position);
            var lag = Math.Max(0, Interlocked.Read(ref c.Known) - position);
            var since = Interlocked.Read(ref c.BehindSince);
            yield return new ReaderCursorStatus(c.Stream, c.Writer, position, lag,
                lag == 0 || since == 0 ? TimeSpan.Zero : Stopwatch.GetElapsedTime(since, now),
                Interlocked.Read(ref c.Applied), Interlocked.Read(ref c.CatchUps), Interlocked.Read(ref c.BackstopHits));
        }
    }

    public IEnumerable<(string Stream, int Writer)> Writers()
    {
        foreach (var stream in StreamNames.All)
        {
            var count = stream == StreamNames.Events ? shards.Current.WriterCount : 1;
            for (var w = 0; w < count; w++) yield return (stream, w);
        }
    }

    public async Task StartAsync(CancellationToken ct)
    {
        _self = grains.CreateObjectReference<IStreamReaderObserver>(this);
        var map = await shards.RefreshAsync();
        // Starting from every writer's current position is past every generation's start.
        _shardGeneration = _barriersPassed = map.Generation;
        await Task.WhenAll(Writers().Select(key => FollowAsync(key, ct)));
        try { await ReplayAsync(ct); }
        catch (NpgsqlException e) { logger.LogWarning("Replaying recent rows to in-memory handlers failed: {Message}", e.Message); }
        _backstop = Task.Run(() => BackstopLoopAsync(_stopping.Token));
    }

    /// <summary>Subscribes to one writer and starts its cursor at the writer's current position (a reader that joins
    /// has nothing cached, and a writer new to the shard map has written nothing yet).</summary>
    private async Task FollowAsync((string Stream, int Writer) key, CancellationToken ct)
    {
        var cursor = _cursors.GetOrAdd(key, k => new Cursor(k.Stream, k.Writer));
        var writer = grains.GetGrain<IStreamWriterGrain>(StreamNames.WriterKey(key.Stream, key.Writer));
        await writer.SubscribeAsync(_self!, host.Silo);
        var position = await writer.GetPositionAsync();
        cursor.Epoch = position.Epoch;
        await cursor.Gate.WaitAsync(ct);
        try
        {
            cursor.Position = Math.Max(cursor.Position, position.Position);
            cursor.Announced(cursor.Position);
            cursor.Initialised = true;
            notifier.Initialise(cursor.Stream, cursor.Writer, cursor.Position);
        }
        finally { cursor.Gate.Release(); }
    }

    /// <summary>A writer spoke of a newer events shard generation: take the new map and follow the writers it adds.</summary>
    private async Task FollowShardMapAsync(int generation)
    {
        await _following.WaitAsync();
        try
        {
            if (_shardGeneration >= generation) return;
            var map = await shards.RefreshAsync();
            var added = Enumerable.Range(0, map.WriterCount).Where(w => !_cursors.ContainsKey((StreamNames.Events, w))).ToList();
            await Task.WhenAll(added.Select(w => FollowAsync((StreamNames.Events, w), _stopping.Token)));
            if (added.Count > 0) logger.LogInformation("Reader follows {Count} more events writers (shard generation {Generation})", added.Count, map.Generation);
            _shardGeneration = Math.Max(_shardGeneration, map.Generation);
        }
        finally { _following.Release(); }
    }

    /// <summary>
    /// Before an events writer moves past the start of a shard generation, every writer must have been applied up to
    /// where the generation before it ended: a room that moved writers then never shows its new writer's events
    /// before its old writer's, and any token this silo hands out holds all of a room's earlier events whenever it
    /// holds a later one. Positions only point down (a generation's start is above all it waits for), so passing one
    /// never waits on a later one.
    /// </summary>
    private async Task PassShardBarriersAsync(long to)
    {
        for (var k = Volatile.Read(ref _barriersPassed) + 1; k <= Volatile.Read(ref _shardGeneration); k++)
        {
            var generation = shards.Current.Generations[k];
            if (to <= generation.After) return;
            await _passingBarrier.WaitAsync();
            try
            {
                if (_barriersPassed >= k) continue;
                for (var w = 0; w < generation.SealedAt.Length; w++)
                    if (_cursors.TryGetValue((StreamNames.Events, w), out var c) && Interlocked.Read(ref c.Position) < generation.SealedAt[w])
                        await ApplyAsync(c, generation.SealedAt[w], null);
                Volatile.Write(ref _barriersPassed, k);
            }
            finally { _passingBarrier.Release(); }
        }
    }

    /// <summary>Hands the handlers that keep state only in memory the log's recent rows (<see cref="IStreamRowHandler.Replay"/>).</summary>
    private async Task ReplayAsync(CancellationToken ct)
    {
        foreach (var group in _handlers)
        {
            var window = group.Max(h => h.Replay);
            if (window <= TimeSpan.Zero) continue;
            await using var cmd = db.CreateCommand(
                "SELECT position, kind, key, payload, writer FROM stream_log WHERE stream = $1 AND created_at >= now() - $2::interval ORDER BY position");
            cmd.Parameters.AddWithValue(group.Key);
            cmd.Parameters.AddWithValue(window);
            await using var reader = await cmd.ExecuteReaderAsync(ct);
            while (await reader.ReadAsync(ct))
            {
                var entry = new StreamEntry(group.Key, reader.GetInt32(4), reader.GetInt64(0), reader.GetString(1),
                    reader.IsDBNull(2) ? null : reader.GetString(2), reader.GetString(3));
                foreach (var handler in group.Where(h => h.Replay > TimeSpan.Zero))
                {
                    try { handler.Handle(entry); }
                    catch (Exception e) { logger.LogError(e, "Row handler {Handler} failed replaying {Stream}@{Position}", handler.GetType().Name, entry.Stream, entry.Position); }
                }
            }
        }
    }

    public async Task StopAsync(CancellationToken ct)
    {
        _stopping.Cancel();
        if (_backstop is not null) await Task.WhenAny(_backstop, Task.Delay(Timeout.Infinite, ct)).ConfigureAwait(false);
        if (_self is null) return;
        try
        {
            await Task.WhenAll(Writers().Select(k => grains.GetGrain<IStreamWriterGrain>(StreamNames.WriterKey(k.Stream, k.Writer)).UnsubscribeAsync(_self)))
                .WaitAsync(TimeSpan.FromSeconds(2), ct);
        }
        catch (Exception e) { logger.LogDebug("Unsubscribing on stop failed: {Message}", e.Message); }
    }

    public Task OnAdvancedAsync(StreamAdvance advance)
    {
        if (hooks.DropNotification?.Invoke(advance) == true) return Task.CompletedTask;
        _ = ApplyAdvanceAsync(advance);
        return Task.CompletedTask;
    }

    private async Task ApplyAdvanceAsync(StreamAdvance advance)
    {
        try
        {
            if (advance.ShardGeneration > Volatile.Read(ref _shardGeneration)) await FollowShardMapAsync(advance.ShardGeneration);
            if (!_cursors.TryGetValue((advance.Stream, advance.Writer), out var cursor)) return;
            cursor.Announced(advance.To);
            await ApplyAsync(cursor, advance.To, advance);
        }
        catch (Exception e)
        {
            // The backstop will retry from the log.
            logger.LogWarning("Reader could not apply {Stream}/{Writer} up to {To}: {Message}", advance.Stream, advance.Writer, advance.To, e.Message);
        }
    }

    public Task<ReaderStatus> GetStatusAsync()
    {
        var positions = _cursors.Values.GroupBy(c => c.Stream).ToDictionary(
            g => g.Key,
            g => (IReadOnlyDictionary<int, long>)g.ToDictionary(c => c.Writer, c => Interlocked.Read(ref c.Position)));
        var lagSeconds = CursorStatus().GroupBy(c => c.Stream).ToDictionary(
            g => g.Key,
            g => (IReadOnlyDictionary<int, double>)g.ToDictionary(c => c.Writer, c => c.LagTime.TotalSeconds));
        return Task.FromResult(new ReaderStatus(host.Name, positions, caches.Status(), lagSeconds));
    }

    /// <summary>Moves a cursor to <paramref name="to"/>: rows from the notification when it starts where we are,
    /// else (after a short wait for the notification before it) from the log.</summary>
    private async Task ApplyAsync(Cursor cursor, long to, StreamAdvance? advance)
    {
        if (cursor.Stream == StreamNames.Events && Volatile.Read(ref _barriersPassed) < Volatile.Read(ref _shardGeneration))
            await PassShardBarriersAsync(to);
        await cursor.Gate.WaitAsync();
        try
        {
            var from = cursor.Position;
            if (!cursor.Initialised || to <= from) return;
            if (advance is not null && advance.From > from)
            {
                cursor.Parked[advance.From] = cursor.Parked.TryGetValue(advance.From, out var parked) && parked.To > advance.To ? parked : advance;
                if (!cursor.GapCheckScheduled)
                {
                    cursor.GapCheckScheduled = true;
                    _ = CloseGapLaterAsync(cursor);
                }
                return;
            }
            if (advance is not null) Apply(cursor, advance.Entries.Where(e => e.Position > from).ToList(), to);
            else
            {
                Interlocked.Increment(ref _catchUps);
                Interlocked.Increment(ref cursor.CatchUps);
                Apply(cursor, await ReadLogAsync(cursor.Stream, cursor.Writer, from, to), to);
            }
            // Parked notifications that now connect, in order.
            while (cursor.Parked.Count > 0 && cursor.Parked.Keys[0] <= cursor.Position)
            {
                var next = cursor.Parked.Values[0];
                cursor.Parked.RemoveAt(0);
                var position = cursor.Position;
                if (next.To > position) Apply(cursor, next.Entries.Where(e => e.Position > position).ToList(), next.To);
            }
        }
        finally { cursor.Gate.Release(); }
    }

    private void Apply(Cursor cursor, IReadOnlyList<StreamEntry> entries, long to)
    {
        foreach (var entry in entries)
        {
            hooks.Applied?.Invoke(entry);
            foreach (var handler in _handlers[cursor.Stream])
            {
                try { handler.Handle(entry); }
                catch (Exception e) { logger.LogError(e, "Row handler {Handler} failed on {Stream}@{Position}", handler.GetType().Name, entry.Stream, entry.Position); }
            }
        }
        Interlocked.Exchange(ref cursor.Position, to);
        Interlocked.Add(ref cursor.Applied, entries.Count);
        cursor.Reached(to);
        notifier.Advanced(cursor.Stream, cursor.Writer, to, entries);
    }

    /// <summary>If the notification that fills a gap has not come after <see cref="GapWait"/>, it was lost (or is very
    /// late): read the gap and everything parked behind it from the log.</summary>
    private async Task CloseGapLaterAsync(Cursor cursor)
    {
        try
        {
            await Task.Delay(GapWait, _stopping.Token);
            long target;
            await cursor.Gate.WaitAsync(_stopping.Token);
            try
            {
                cursor.GapCheckScheduled = false;
                target = cursor.Parked.Count == 0 ? 0 : cursor.Parked.Values.Max(a => a.To);
                cursor.Parked.Clear();
            }
            finally { cursor.Gate.Release(); }
            if (target > Interlocked.Read(ref cursor.Position)) await ApplyAsync(cursor, target, null);
        }
        catch (OperationCanceledException) { }
        catch (Exception e)
        {
            // The backstop will retry from the log.
            logger.LogWarning("Reader could not close a gap in {Stream}/{Writer}: {Message}", cursor.Stream, cursor.Writer, e.Message);
        }
    }

    private async Task<IReadOnlyList<StreamEntry>> ReadLogAsync(string stream, int writer, long from, long to)
    {
        var entries = new List<StreamEntry>();
        await using var batch = db.CreateBatch();
        batch.BatchCommands.Add(new NpgsqlBatchCommand(
            "SELECT position, kind, key, payload FROM stream_log WHERE stream = $1 AND writer = $2 AND position > $3 AND position <= $4 ORDER BY position")
        {
            Parameters = { new() { Value = stream }, new() { Value = writer }, new() { Value = from }, new() { Value = to } }
        });
        batch.BatchCommands.Add(new NpgsqlBatchCommand("SELECT pruned_upto FROM stream_pruned WHERE stream = $1")
        {
            Parameters = { new() { Value = stream } }
        });
        await using var reader = await batch.ExecuteReaderAsync();
        while (await reader.ReadAsync())
            entries.Add(new StreamEntry(stream, writer, reader.GetInt64(0), reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2), reader.GetString(3)));
        await reader.NextResultAsync();
        if (await reader.ReadAsync() && reader.GetInt64(0) > from)
        {
            // Rows we never saw were pruned: we cannot know which keys they touched.
            logger.LogWarning("Reader fell behind the pruned part of {Stream}; dropping every cache on this silo", stream);
            caches.InvalidateEverything();
        }
        return entries;
    }

    /// <summary>
    /// Polls each writer when its cursor is due, renews every subscription each <see cref="RenewPeriod"/>, and polls
    /// every writer at once when membership changes. It sleeps until the next of those is due (or membership changes),
    /// so a quiet process wakes for it every few seconds, not every period. Each cursor's poll runs on its own: a call
    /// to a writer on a silo that died and is not yet declared dead waits for its response timeout, and the other
    /// writers' polls (the ones that find where writers went after a failure) must not wait with it.
    /// </summary>
    private async Task BackstopLoopAsync(CancellationToken ct)
    {
        var period = options.Value.ReaderBackstopPeriod;
        var membershipVersion = host.MembershipVersion;
        var lastRenew = DateTime.UtcNow;
        var membershipChange = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _ = host.WatchMembershipAsync(() => Volatile.Read(ref membershipChange).TrySetResult(), ct);
        while (!ct.IsCancellationRequested)
        {
            var next = lastRenew + RenewPeriod;
            foreach (var c in _cursors.Values)
            {
                var due = c.RenewDue || c.MembershipDue ? DateTime.MinValue : c.NextPoll;
                if (due < next) next = due;
            }
            var sleep = next - DateTime.UtcNow;
            if (sleep < period) sleep = period; // never busier than the configured period
            try { await Task.WhenAny(Task.Delay(sleep, ct), membershipChange.Task); }
            catch (OperationCanceledException) { return; }
            if (ct.IsCancellationRequested) return;
            if (membershipChange.Task.IsCompleted)
                Volatile.Write(ref membershipChange, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));

            var now = DateTime.UtcNow;
            // A silo came or went: writers may have moved to new activations that do not know this reader yet.
            var version = host.MembershipVersion;
            var membershipChanged = version != membershipVersion;
            membershipVersion = version;
            // Renewing subscriptions asks every writer.
            var renew = now - lastRenew >= RenewPeriod;
            if (renew) lastRenew = now;
            foreach (var c in _cursors.Values)
            {
                if (renew) c.RenewDue = true;
                if (membershipChanged) c.MembershipDue = true;
                if (c.Poll is { IsCompleted: false } || !(c.MembershipDue || c.RenewDue || c.NextPoll <= now)) continue;
                var (renewing, moved) = (c.RenewDue, c.MembershipDue);
                (c.RenewDue, c.MembershipDue) = (false, false);
                c.Poll = PollAndScheduleAsync(c, renewing, moved, period);
            }
        }
    }

    /// <summary>One cursor's backstop poll, then when it is due next: trouble (a membership change, a writer that moved or
    /// could not be reached, rows the pushes missed) brings every cursor back to the shortest period; a quiet poll
    /// doubles its own interval up to <see cref="MaxBackstopInterval"/>.</summary>
    private async Task PollAndScheduleAsync(Cursor cursor, bool renew, bool membershipChanged, TimeSpan period)
    {
        var trouble = await PollAsync(cursor, renew) || membershipChanged;
        var now = DateTime.UtcNow;
        foreach (var c in trouble ? _cursors.Values : [cursor])
        {
            c.PollInterval = trouble || c.PollInterval == TimeSpan.Zero
                ? period
                : TimeSpan.FromTicks(Math.Min(c.PollInterval.Ticks * 2, Math.Max(MaxBackstopInterval.Ticks, period.Ticks)));
            c.NextPoll = now + c.PollInterval;
        }
    }

    /// <summary>Asks one writer where it is; true when that found something the notifications had not brought.</summary>
    private async Task<bool> PollAsync(Cursor cursor, bool renew)
    {
        try
        {
            var writer = grains.GetGrain<IStreamWriterGrain>(StreamNames.WriterKey(cursor.Stream, cursor.Writer));
            var position = await writer.GetPositionAsync();
            if (position.ShardGeneration > Volatile.Read(ref _shardGeneration)) await FollowShardMapAsync(position.ShardGeneration);
            var found = false;
            // A new epoch is a new activation: it has no subscribers yet, so subscribe at once rather than at renewal.
            if (renew || position.Epoch != cursor.Epoch)
            {
                found = position.Epoch != cursor.Epoch;
                await writer.SubscribeAsync(_self!, host.Silo);
                cursor.Epoch = position.Epoch;
            }
            cursor.Announced(position.Position);
            if (position.Position > Interlocked.Read(ref cursor.Position))
            {
                found = true;
                Interlocked.Increment(ref cursor.BackstopHits);
                await ApplyAsync(cursor, position.Position, null);
            }
            return found;
        }
        catch (Exception e) when (!_stopping.IsCancellationRequested)
        {
            logger.LogDebug("Backstop poll of {Stream}/{Writer} failed: {Message}", cursor.Stream, cursor.Writer, e.Message);
            return true; // a writer that cannot be reached is trouble: keep polling often
        }
        catch (Exception) { return false; }
    }

    public void Dispose() => _stopping.Dispose();
}

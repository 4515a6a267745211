using System.Diagnostics;
using Homeserver.Observability;
using Homeserver.Storage;
using Homeserver.Streams;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using Orleans.Concurrency;
using Orleans.Runtime;

namespace Homeserver.Streams;

/// <summary>
/// The writer of one shard of a stream (see <see cref="IStreamWriterGrain"/>). Concurrent appends are group-committed:
/// whatever queued while a transaction was being built goes into the next one, with up to
/// a few transactions in flight (8; for the events writers <see cref="HomeserverOptions.EventWriterMaxInFlight"/>), so completion can be out of order and
/// <see cref="PositionTracker"/> decides what is visible. Correctness rests on the database, not on single
/// activation: positions come from the stream's sequence, and every transaction first checks this activation's epoch.
/// </summary>
[Reentrant]
[StreamWriterPlacement]
public sealed class StreamWriterGrain(
    NpgsqlDataSource db,
    IEnumerable<IStreamRowPersister> persisters,
    IEnumerable<IStreamHousekeeper> housekeepers,
    StreamTestHooks hooks,
    IClusterMembershipService membership,
    ILocalSiloDetails silo,
    StreamNotifier localReader,
    EventShards shards,
    IOptions<HomeserverOptions> options,
    HomeserverMetrics metrics,
    ILogger<StreamWriterGrain> logger) : Grain, IStreamWriterGrain, IGrainMigrationParticipant
{
    private const int DefaultMaxInFlight = 8;
    private const int MaxBatchRows = 512;
    private static readonly TimeSpan SubscriptionExpiry = TimeSpan.FromSeconds(90);
    private static readonly TimeSpan TypingLogRetention = TimeSpan.FromMinutes(10);

    private readonly Dictionary<string, IStreamRowPersister> _persisters = persisters.ToDictionary(p => p.Kind, StringComparer.Ordinal);
    private readonly Queue<PendingAppend> _queue = new();
    private readonly Dictionary<IStreamReaderObserver, (SiloAddress? Silo, DateTime Seen)> _subscribers = [];
    private readonly SemaphoreSlim _allocation = new(1, 1);
    private readonly List<long[]> _unresolved = [];
    // Positions allocated ahead of need, ascending, so that most commits are one round trip (the batch) rather than
    // two (nextval, then the batch): a lone sender waits for every round trip. The tracker counts them in flight, so
    // "persisted up to" never passes one until it is committed or given back; they are given back (aborted) when the
    // writer is idle (before it claims a position), and when it is sealed or opened for a new shard generation, so
    // that a room moved to another writer never gets a position below its events on this one.
    private readonly Queue<long> _spare = new();
    private int _spareGeneration;
    // The spares are topped up in the background once half are used, so that the query is off the commit's path.
    private Task? _refill;
    private readonly Dictionary<IStreamHousekeeper, DateTime> _housekeepersDue = [];
    // When this activation first saw each active silo: writers move only to silos that have been up a while.
    private readonly Dictionary<SiloAddress, DateTime> _silosSeen = [];
    // Set when a move home was asked for; cleared if the migration has not happened a while later, to ask again.
    private DateTime? _movingSince;
    // The silo endpoint an operator pinned this writer to (StreamWriterPins), read with the epoch.
    private string? _pinnedTo;

    private string _stream = "";
    private int _writer;
    private int _maxInFlight = DefaultMaxInFlight;
    private long _epoch;
    private PositionTracker _tracker = new(0);
    private int _inFlight;
    private bool _fenced;
    private string _sequence = "";
    // Events writers only: the shard map generation whose routed appends this writer takes, and whether a reshard
    // has sealed it (it then takes none until opened under the next generation).
    private int _shardGeneration;
    private bool _sealed;
    private IGrainTimer? _sealedCheck;
    private HomeserverMetrics.WriterInstruments? _metrics;

    private sealed record PendingAppend(StreamRow[] Rows, TaskCompletionSource<AppendResult> Done);

    public override async Task OnActivateAsync(CancellationToken ct)
    {
        (_stream, _writer) = StreamNames.ParseWriterKey(this.GetPrimaryKeyString());
        if (!StreamNames.IsKnown(_stream)) throw new ArgumentException($"Unknown stream '{_stream}'");
        _sequence = $"stream_seq_{_stream}";
        if (_stream == StreamNames.Events) _maxInFlight = Math.Max(1, options.Value.EventWriterMaxInFlight);

        await StorageOutage.DuringActivationAsync(() => TakeEpochAsync(ct));
        _metrics = metrics.Writer(_stream, _writer);
        _metrics.Epoch = _epoch;
        _metrics.Position = _tracker.Persisted;
        logger.LogInformation("Stream writer {Stream}/{Writer} active at {Position} with epoch {Epoch}", _stream, _writer, _tracker.Persisted, _epoch);

        // Sharded streams share one sequence, so an idle shard must keep claiming its value or it pins the minimum.
        // A single writer's sequence only moves when it appends, so it has nothing to claim.
        if (_stream == StreamNames.Events)
        {
            // Fresh from the map grain: a reshard may be sealing the writers right now.
            var map = await shards.RefreshAsync();
            _shardGeneration = map.Generation;
            if (map.ReshardingTo is not null) Seal();
            this.RegisterGrainTimer(IdleTick, new GrainTimerCreationOptions(IdleTickPeriod, IdleTickPeriod) { Interleave = true });
        }
        if (_writer == 0)
            foreach (var h in housekeepers.Where(h => h.Stream == _stream)) _housekeepersDue[h] = DateTime.UtcNow + h.Period;
        var rebalance = options.Value.WriterRebalanceDelay;
        if (rebalance > TimeSpan.Zero)
        {
            var period = TimeSpan.FromTicks(Math.Clamp(rebalance.Ticks / 4, TimeSpan.FromMilliseconds(250).Ticks, TimeSpan.FromSeconds(5).Ticks));
            this.RegisterGrainTimer(_ => { MoveHomeIfSettled(); return Task.CompletedTask; }, new GrainTimerCreationOptions(period, period) { Interleave = true });
        }
        this.RegisterGrainTimer(HousekeepingAsync, new GrainTimerCreationOptions(TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(5)) { Interleave = true });
    }

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken ct)
    {
        _metrics?.Dispose();
        return Task.CompletedTask;
    }

    // Taking a new epoch waits for every in-flight append of an earlier activation (they hold the row FOR SHARE)
    // and makes all of its later appends fail, so everything allocated before now has committed or never will.
    private async Task TakeEpochAsync(CancellationToken ct)
    {
        await using var batch = db.CreateBatch();
        batch.BatchCommands.Add(new NpgsqlBatchCommand(
            """
            INSERT INTO stream_writers (stream, writer, epoch, silo, activated_at) VALUES ($1, $2, 1, $3, now())
            ON CONFLICT (stream, writer) DO UPDATE SET epoch = stream_writers.epoch + 1, silo = $3, activated_at = now()
            RETURNING epoch, pinned_to
            """) { Parameters = { new() { Value = _stream }, new() { Value = _writer }, new() { Value = silo.SiloAddress.ToString() } } });
        batch.BatchCommands.Add(new NpgsqlBatchCommand(
            $"SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {_sequence}"));
        await using (var reader = await batch.ExecuteReaderAsync(ct))
        {
            await reader.ReadAsync(ct);
            _epoch = reader.GetInt64(0);
            _pinnedTo = reader.IsDBNull(1) ? null : reader.GetString(1);
            await reader.NextResultAsync(ct);
            await reader.ReadAsync(ct);
            _tracker = new PositionTracker(reader.GetInt64(0));
        }
    }

    public Task<AppendResult> AppendAsync(StreamRow[] rows)
    {
        if (_fenced) throw new StreamWriterFencedException($"Writer {_stream}/{_writer} epoch {_epoch} was superseded");
        if (rows.Length == 0) return Task.FromResult(new AppendResult(_stream, _writer, []));
        var pending = new PendingAppend(rows, new TaskCompletionSource<AppendResult>(TaskCreationOptions.RunContinuationsAsynchronously));
        _queue.Enqueue(pending);
        if (_inFlight < _maxInFlight) _ = PumpAsync();
        return pending.Done.Task;
    }

    public Task<AppendResult> AppendRoutedAsync(StreamRow[] rows, int shardGeneration)
    {
        if (_sealed || shardGeneration != _shardGeneration)
            throw new EventShardsChangedException(_shardGeneration, _sealed,
                $"Writer {_stream}/{_writer} is at shard generation {_shardGeneration}{(_sealed ? " (sealed)" : "")}, the append was routed by {shardGeneration}");
        return AppendAsync(rows);
    }

    private static readonly TimeSpan SealedCheckPeriod = TimeSpan.FromSeconds(2);

    /// <summary>Refuses routed appends until opened. While sealed the writer asks the map now and then: if the grain
    /// running the reshard died, the ask activates it again and it finishes the reshard, opening this writer.</summary>
    private void Seal()
    {
        _sealed = true;
        _sealedCheck ??= this.RegisterGrainTimer(async _ =>
        {
            var current = await shards.RefreshAsync();
            if (current.ReshardingTo is null && current.Generation > _shardGeneration) Open(current.Generation);
        }, new GrainTimerCreationOptions(SealedCheckPeriod, SealedCheckPeriod) { Interleave = true });
    }

    public async Task<long> SealAsync()
    {
        Seal();
        // What was accepted before the seal commits (or fails) in this generation; nothing new is accepted.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while ((_queue.Count > 0 || _inFlight > 0 || _unresolved.Count > 0 || _refill is not null) && DateTime.UtcNow < deadline)
        {
            if (_unresolved.Count > 0 && _inFlight == 0 && _queue.Count == 0) await ResolveUnknownOutcomesAsync(CancellationToken.None);
            else await Task.Delay(5);
        }
        if (_queue.Count > 0 || _inFlight > 0 || _unresolved.Count > 0 || _refill is not null)
            throw new StreamUnavailableException($"Writer {_stream}/{_writer} could not drain its appends to seal");
        GiveBackSpare();
        logger.LogInformation("Writer {Stream}/{Writer} sealed at {Position} (shard generation {Generation})", _stream, _writer, _tracker.Persisted, _shardGeneration);
        return _tracker.Persisted;
    }

    public Task OpenAsync(int shardGeneration)
    {
        if (shardGeneration >= _shardGeneration) Open(shardGeneration);
        return Task.CompletedTask;
    }

    private void Open(int shardGeneration)
    {
        _shardGeneration = shardGeneration;
        _sealed = false;
        _sealedCheck?.Dispose();
        _sealedCheck = null;
    }

    public Task<WriterPosition> GetPositionAsync() =>
        Task.FromResult(new WriterPosition(_stream, _writer, _tracker.Persisted, _epoch, silo.SiloAddress.ToString(), _shardGeneration));

    public Task SubscribeAsync(IStreamReaderObserver reader, SiloAddress? readerSilo)
    {
        _subscribers[reader] = (readerSilo, DateTime.UtcNow);
        return Task.CompletedTask;
    }

    public Task UnsubscribeAsync(IStreamReaderObserver reader)
    {
        _subscribers.Remove(reader);
        return Task.CompletedTask;
    }

    public Task MoveToAsync(SiloAddress target)
    {
        if (target.Equals(silo.SiloAddress)) return Task.CompletedTask;
        _movingSince = DateTime.UtcNow; // the rebalancer must not send this activation elsewhere meanwhile
        MigrateTo(target);
        return Task.CompletedTask;
    }

    public Task ForgetPinAsync()
    {
        _pinnedTo = null;
        return Task.CompletedTask;
    }

    public Task<IStreamReaderObserver[]> GetSubscribersAsync() => Task.FromResult(_subscribers.Keys.ToArray());

    private async Task PumpAsync()
    {
        while (_queue.Count > 0 && _inFlight < _maxInFlight && !_fenced)
        {
            var appends = new List<PendingAppend>();
            var rows = 0;
            while (_queue.Count > 0 && (appends.Count == 0 || rows + _queue.Peek().Rows.Length <= MaxBatchRows))
            {
                var next = _queue.Dequeue();
                appends.Add(next);
                rows += next.Rows.Length;
            }
            _inFlight++;
            try { await CommitAsync(appends); }
            finally { _inFlight--; }
        }
    }

    private async Task CommitAsync(List<PendingAppend> appends)
    {
        long[] positions;
        var started = Stopwatch.GetTimestamp();
        await _allocation.WaitAsync();
        try
        {
            positions = await TakePositionsAsync(appends.Sum(a => a.Rows.Length));
        }
        catch (Exception e)
        {
            Fail(appends, Classify(e));
            return;
        }
        finally { _allocation.Release(); }

        var entries = new List<StreamEntry>(positions.Length);
        var i = 0;
        foreach (var append in appends)
            foreach (var row in append.Rows)
                entries.Add(new StreamEntry(_stream, _writer, positions[i++], row.Kind, row.Key, row.Payload));

        if (hooks.BeforeCommit is { } hook)
        {
            try { await hook(_stream, _writer, entries); }
            catch (Exception e)
            {
                // Nothing reached the database: the positions are aborted, and the caller told so.
                _tracker.Aborted(positions);
                Publish();
                Fail(appends, new InvalidOperationException($"Append aborted before commit: {e.Message}"));
                return;
            }
        }

        try
        {
            await WriteAsync(entries);
        }
        catch (PostgresException e) when (e.SqlState == "HSF01")
        {
            _tracker.Aborted(positions);
            OnFenced(appends);
            return;
        }
        catch (PostgresException e) when (!IsConnectionFailure(e))
        {
            // The server rolled the transaction back. One bad append must not fail the others that shared its batch.
            _tracker.Aborted(positions);
            Publish();
            if (appends.Count > 1)
            {
                // Each in a transaction of its own (new positions), so only the bad one fails.
                foreach (var append in appends)
                {
                    if (_fenced) append.Done.TrySetException(new StreamWriterFencedException($"Writer {_stream}/{_writer} epoch {_epoch} was superseded"));
                    else await CommitAsync([append]);
                }
                return;
            }
            logger.LogWarning(e, "Append to {Stream}/{Writer} rejected by the database", _stream, _writer);
            Fail(appends, new StreamAppendRejectedException(e.SqlState, $"Append rejected by the database: {e.MessageText}"));
            return;
        }
        catch (Exception e)
        {
            // The outcome is unknown (the connection failed around the commit): the positions stay in flight until
            // HousekeepingAsync learns from the database whether they committed.
            _unresolved.Add(positions);
            Fail(appends, Classify(e));
            return;
        }

        _tracker.Committed(entries);
        _metrics?.Committed(entries.Count, started);
        i = 0;
        foreach (var append in appends)
        {
            append.Done.TrySetResult(new AppendResult(_stream, _writer, positions[i..(i + append.Rows.Length)]));
            i += append.Rows.Length;
        }
        Publish();
    }

    /// <summary>The next <paramref name="count"/> positions, from the spare ones, topping them up from the sequence
    /// (one query) when they do not suffice. Called under <see cref="_allocation"/>.</summary>
    private async ValueTask<long[]> TakePositionsAsync(int count)
    {
        // Never two allocations at once: their values would arrive in either order, and the spares must ascend.
        if (_refill is not null) await _refill;
        if (_spare.Count > 0 && _spareGeneration != _shardGeneration)
        {
            // Taken under an earlier shard map: rooms that moved here may already have higher positions elsewhere.
            _tracker.Aborted(_spare);
            _spare.Clear();
        }
        if (_spare.Count < count)
        {
            _spareGeneration = _shardGeneration;
            var fresh = await AllocateAsync(count - _spare.Count + Math.Max(0, options.Value.StreamWriterSparePositions));
            _tracker.Allocated(fresh);
            foreach (var p in fresh) _spare.Enqueue(p);
        }
        var positions = new long[count];
        for (var i = 0; i < count; i++) positions[i] = _spare.Dequeue();
        var target = options.Value.StreamWriterSparePositions;
        if (target > 0 && _spare.Count < target / 2 && RefillSpareAsync(target) is { IsCompleted: false } refill) _refill = refill;
        return positions;
    }

    private async Task RefillSpareAsync(int count)
    {
        var generation = _shardGeneration;
        try
        {
            var fresh = await AllocateAsync(count);
            // A reshard meanwhile: these values may be below what the rooms that moved here already have elsewhere.
            if (generation != _shardGeneration || _fenced) return;
            _tracker.Allocated(fresh);
            foreach (var p in fresh) _spare.Enqueue(p);
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or IOException)
        {
            // The commit that needs them allocates for itself (and reports the outage).
            logger.LogDebug("Topping up the spare positions of {Stream}/{Writer} failed: {Message}", _stream, _writer, e.Message);
        }
        finally { _refill = null; }
    }

    /// <summary>Aborts the spare positions (nothing was written at them), so that "persisted up to" can pass them.</summary>
    private void GiveBackSpare()
    {
        if (_spare.Count == 0) return;
        _tracker.Aborted(_spare);
        _spare.Clear();
        Publish();
    }

    private async Task<long[]> AllocateAsync(int count)
    {
        await using var cmd = db.CreateCommand($"SELECT nextval('{_sequence}') FROM generate_series(1, $1)");
        cmd.Parameters.AddWithValue(count);
        var positions = new long[count];
        await using var reader = await cmd.ExecuteReaderAsync();
        var n = 0;
        while (await reader.ReadAsync()) positions[n++] = reader.GetInt64(0);
        Array.Sort(positions);
        return positions;
    }

    // One round trip, one implicit transaction: the fence, the log rows, then each row's domain rows.
    private async Task WriteAsync(List<StreamEntry> entries)
    {
        await using var batch = db.CreateBatch();
        batch.BatchCommands.Add(new NpgsqlBatchCommand("SELECT stream_fence($1, $2, $3)")
        {
            Parameters = { new() { Value = _stream }, new() { Value = _writer }, new() { Value = _epoch } }
        });
        batch.BatchCommands.Add(new NpgsqlBatchCommand(
            """
            INSERT INTO stream_log (stream, position, writer, kind, key, payload)
            SELECT $1, p, $2, k, y, d FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[]) AS r(p, k, y, d)
            """)
        {
            Parameters =
            {
                new() { Value = _stream }, new() { Value = _writer },
                new() { Value = entries.Select(e => e.Position).ToArray() },
                new() { Value = entries.Select(e => e.Kind).ToArray() },
                new() { Value = entries.Select(e => e.Key).ToArray(), NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Array | NpgsqlTypes.NpgsqlDbType.Text },
                new() { Value = entries.Select(e => e.Payload).ToArray() },
            }
        });
        // Runs of consecutive rows of one kind go to their persister together (it may write them in one statement);
        // splitting only at a change of kind keeps every row's effects in position order.
        for (var start = 0; start < entries.Count;)
        {
            var end = start + 1;
            while (end < entries.Count && entries[end].Kind == entries[start].Kind) end++;
            if (_persisters.TryGetValue(entries[start].Kind, out var persister))
            {
                if (end - start == 1) persister.AddCommands(batch, entries[start]);
                else persister.AddCommands(batch, entries.GetRange(start, end - start));
            }
            start = end;
        }
        await batch.ExecuteNonQueryAsync();
    }

    private void Publish()
    {
        var from = _tracker.Persisted;
        var released = _tracker.Release();
        if (_metrics is not null) _metrics.Position = _tracker.Persisted;
        if (_tracker.Persisted > from) Notify(new StreamAdvance(_stream, _writer, from, _tracker.Persisted, released.ToArray(), _shardGeneration));
    }

    private void Notify(StreamAdvance advance)
    {
        foreach (var reader in _subscribers.Keys)
        {
            // One-way: a slow or dead silo must not hold up the writer; readers recover anything lost from the log.
            try { _ = reader.OnAdvancedAsync(advance); }
            catch (Exception e) { logger.LogDebug(e, "Notifying a reader failed"); }
        }
    }

    private static readonly TimeSpan IdleTickPeriod = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// An idle shard claims the highest position this silo's reader has seen of its stream: another shard persisted
    /// it, so the shared sequence has handed out every value up to it, and this shard, idle, holds none of them
    /// unpersisted; its next append takes a higher one. Claiming moves the stream's minimum (tokens stay short) at
    /// the cost of a look at memory, not a database query per tick.
    /// </summary>
    private Task IdleTick(CancellationToken ct)
    {
        // Synchronous from the check to the advance: no append can start in between.
        if (_refill is not null) return Task.CompletedTask; // its positions are not in the tracker yet
        if (!_fenced && _inFlight == 0 && _queue.Count == 0 && _allocation.CurrentCount > 0) GiveBackSpare();
        if (_fenced || !_tracker.Idle || _unresolved.Count > 0 || _allocation.CurrentCount == 0) return Task.CompletedTask;
        var seen = localReader.Current[_stream].Max;
        var from = _tracker.Persisted;
        if (seen > from && _tracker.AdvanceIdle(seen))
        {
            if (_metrics is not null) _metrics.Position = seen;
            Notify(new StreamAdvance(_stream, _writer, from, seen, [], _shardGeneration));
        }
        return Task.CompletedTask;
    }

    private async Task HousekeepingAsync(CancellationToken ct)
    {
        var alive = membership.CurrentSnapshot.Members
            .Where(m => m.Value.Status == SiloStatus.Active).Select(m => m.Key).ToHashSet();
        var cutoff = DateTime.UtcNow - SubscriptionExpiry;
        foreach (var (reader, (readerSilo, seen)) in _subscribers.ToArray())
            if (seen < cutoff || (readerSilo is not null && !alive.Contains(readerSilo))) _subscribers.Remove(reader);

        if (_unresolved.Count > 0) await ResolveUnknownOutcomesAsync(ct);
        // Typing rows matter only until the longest typing timeout (a starting silo replays that much); the other
        // streams' rows only to readers catching up, as their data lives in its own tables.
        await PruneAsync(_stream switch
        {
            StreamNames.Caches => options.Value.CacheStreamRetention,
            StreamNames.Typing => TypingLogRetention,
            _ => options.Value.StreamLogRetention,
        }, ct);
        foreach (var (housekeeper, due) in _housekeepersDue.ToArray())
        {
            if (DateTime.UtcNow < due) continue;
            _housekeepersDue[housekeeper] = DateTime.UtcNow + housekeeper.Period;
            try { await housekeeper.RunAsync(ct); }
            catch (Exception e)
            {
                logger.LogWarning("Housekeeping {Housekeeper} of {Stream} failed, retried in {Period}: {Message}",
                    housekeeper.GetType().Name, _stream, housekeeper.Period, e.Message);
            }
        }
    }

    /// <summary>
    /// Moves this writer to its home (<see cref="StreamWriterHome"/>) among the silos active for at least
    /// <see cref="HomeserverOptions.WriterRebalanceDelay"/>: a silo that joined gets its share once it has settled.
    /// The move is Orleans' live migration; the new activation takes a new epoch, so the database fences anything the
    /// old one still had in flight.
    /// </summary>
    private void MoveHomeIfSettled()
    {
        var delay = options.Value.WriterRebalanceDelay;
        var now = DateTime.UtcNow;
        if (delay <= TimeSpan.Zero || _fenced || now - _movingSince < TimeSpan.FromSeconds(30)) return;
        var active = membership.CurrentSnapshot.Members.Values.Where(m => m.Status == SiloStatus.Active).Select(m => m.SiloAddress).ToList();
        foreach (var s in active) _silosSeen.TryAdd(s, now);
        // This silo always counts: a writer placed on a silo that just joined must not leave it and come back.
        // A silo an operator pinned this writer to counts at once.
        var settled = active.Where(s => s.Equals(silo.SiloAddress) || now - _silosSeen[s] >= delay || StreamWriterHome.Endpoint(s) == _pinnedTo).ToList();
        if (settled.Count == 0) return;
        var home = StreamWriterHome.Choose(this.GetPrimaryKeyString(), settled, _pinnedTo);
        if (home.Equals(silo.SiloAddress)) return;
        logger.LogInformation("Writer {Stream}/{Writer} moves from {From} to its home {To}", _stream, _writer, silo.SiloAddress, home);
        _movingSince = now;
        MigrateTo(home);
    }

    private void MigrateTo(SiloAddress target)
    {
        RequestContext.Set(Orleans.Runtime.Placement.IPlacementDirector.PlacementHintKey, target);
        this.MigrateOnIdle();
    }

    // Readers stay subscribed across a move, so they keep getting pushed rows instead of waiting for their backstop.
    private const string SubscribersKey = "subscribers";

    public void OnDehydrate(IDehydrationContext context) =>
        context.TryAddValue(SubscribersKey, _subscribers.Select(s => (s.Key, s.Value.Silo)).ToArray());

    public void OnRehydrate(IRehydrationContext context)
    {
        if (!context.TryGetValue<(IStreamReaderObserver Reader, SiloAddress? Silo)[]>(SubscribersKey, out var subscribers) || subscribers is null) return;
        foreach (var (reader, readerSilo) in subscribers) _subscribers[reader] = (readerSilo, DateTime.UtcNow);
    }

    private async Task ResolveUnknownOutcomesAsync(CancellationToken ct)
    {
        try
        {
            var positions = _unresolved.SelectMany(p => p).ToArray();
            await using var conn = await db.OpenConnectionAsync(ct);
            await using var tx = await conn.BeginTransactionAsync(ct);
            // FOR UPDATE waits for any transaction of ours still holding the writer row, so the answer is final.
            await using (var lockCmd = new NpgsqlCommand("SELECT 1 FROM stream_writers WHERE stream = $1 AND writer = $2 FOR UPDATE", conn, tx))
            {
                lockCmd.Parameters.AddWithValue(_stream);
                lockCmd.Parameters.AddWithValue(_writer);
                await lockCmd.ExecuteNonQueryAsync(ct);
            }
            var found = new List<StreamEntry>();
            await using (var cmd = new NpgsqlCommand(
                "SELECT position, kind, key, payload FROM stream_log WHERE stream = $1 AND position = ANY($2) ORDER BY position", conn, tx))
            {
                cmd.Parameters.AddWithValue(_stream);
                cmd.Parameters.AddWithValue(positions);
                await using var reader = await cmd.ExecuteReaderAsync(ct);
                while (await reader.ReadAsync(ct))
                    found.Add(new StreamEntry(_stream, _writer, reader.GetInt64(0), reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2), reader.GetString(3)));
            }
            await tx.CommitAsync(ct);
            _unresolved.Clear();
            _tracker.Committed(found);
            _tracker.Aborted(positions.Except(found.Select(f => f.Position)));
            Publish();
        }
        catch (Exception e) when (e is NpgsqlException or OperationCanceledException)
        {
            logger.LogWarning("Writer {Stream}/{Writer} still cannot reach the database: {Message}", _stream, _writer, e.Message);
        }
    }

    private const int PruneBatchRows = 5_000;
    private const int PruneBatchesPerRound = 20;

    /// <summary>
    /// Deletes this writer's log rows older than <paramref name="retention"/>, oldest first in bounded batches (an
    /// index range on (stream, writer, position), never a scan of the whole log), and records how far in
    /// <c>stream_pruned</c> so that a reader that fell further behind knows it cannot replay.
    /// </summary>
    private async Task PruneAsync(TimeSpan retention, CancellationToken ct)
    {
        try
        {
            // Positions follow commit time closely, so when the oldest row is young there is nothing to prune: one
            // index entry read every few seconds instead of a batch.
            await using (var oldest = db.CreateCommand(
                "SELECT created_at < now() - $3::interval FROM stream_log WHERE stream = $1 AND writer = $2 ORDER BY position LIMIT 1"))
            {
                oldest.Parameters.AddWithValue(_stream);
                oldest.Parameters.AddWithValue(_writer);
                oldest.Parameters.AddWithValue(retention);
                if (await oldest.ExecuteScalarAsync(ct) is not true) return;
            }
            for (var round = 0; round < PruneBatchesPerRound; round++)
            {
                await using var cmd = db.CreateCommand(
                    $"""
                    WITH pruned AS (
                        DELETE FROM stream_log
                         WHERE stream = $1 AND created_at < now() - $4::interval AND position IN (
                               SELECT position FROM stream_log WHERE stream = $1 AND writer = $2 AND position <= $3
                                ORDER BY position LIMIT {PruneBatchRows})
                        RETURNING position),
                    marked AS (
                        INSERT INTO stream_pruned (stream, pruned_upto)
                        SELECT $1, max(position) FROM pruned HAVING count(*) > 0
                        ON CONFLICT (stream) DO UPDATE SET pruned_upto = GREATEST(stream_pruned.pruned_upto, EXCLUDED.pruned_upto))
                    SELECT count(*) FROM pruned
                    """);
                cmd.Parameters.AddWithValue(_stream);
                cmd.Parameters.AddWithValue(_writer);
                cmd.Parameters.AddWithValue(_tracker.Persisted);
                cmd.Parameters.AddWithValue(retention);
                if ((long)(await cmd.ExecuteScalarAsync(ct))! < PruneBatchRows) return;
            }
        }
        catch (Exception e) when (e is NpgsqlException or OperationCanceledException)
        {
            logger.LogDebug("Pruning {Stream} skipped: {Message}", _stream, e.Message);
        }
    }

    private void OnFenced(List<PendingAppend> appends)
    {
        _fenced = true;
        logger.LogError("Stream writer {Stream}/{Writer} epoch {Epoch} was superseded by another activation; deactivating", _stream, _writer, _epoch);
        var error = new StreamWriterFencedException($"Writer {_stream}/{_writer} epoch {_epoch} was superseded by another activation");
        Fail(appends, error);
        while (_queue.Count > 0) _queue.Dequeue().Done.TrySetException(error);
        this.DeactivateOnIdle();
    }

    private static void Fail(List<PendingAppend> appends, Exception error)
    {
        foreach (var a in appends) a.Done.TrySetException(error);
    }

    private static bool IsConnectionFailure(PostgresException e) =>
        e.SqlState.StartsWith("08", StringComparison.Ordinal) || e.SqlState.StartsWith("57P", StringComparison.Ordinal) || e.SqlState == "53300";

    private Exception Classify(Exception e) => e switch
    {
        StreamWriterFencedException or StreamUnavailableException => e,
        PostgresException pg when !IsConnectionFailure(pg) => new InvalidOperationException($"Append failed: {pg.MessageText}"),
        NpgsqlException or TimeoutException or System.Net.Sockets.SocketException or IOException =>
            new StreamUnavailableException($"The database of stream {_stream} is unavailable; nothing was acknowledged: {e.Message}"),
        _ => new InvalidOperationException($"Append failed: {e.Message}"),
    };
}

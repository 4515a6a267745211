using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using Homeserver.Caches;
using Homeserver.Streams;

namespace Homeserver.Observability;

/// <summary>
/// Every instrument of the homeserver's own meter (<see cref="MeterName"/>), in one place. One instance per process
/// (per DI container: test silos share a process), created through the container's <see cref="IMeterFactory"/>, so
/// its observable instruments read this silo's reader, caches and waiters and no other's (the metrics setup enables
/// the meter for the container's own factory only; see <see cref="ObservabilityHostingExtensions"/>).
/// </summary>
/// <remarks>
/// Hot paths (a commit, the reader applying rows) only bump counters and plain fields; everything that has to be
/// gathered (positions, lag, cache sizes, waiters) is read when a scrape asks for it, by observable instruments.
/// With metrics off nothing listens, and each synchronous instrument's call is one check of <c>Enabled</c>.
/// Names and units follow OpenTelemetry's conventions: dot-separated names, seconds for durations, UCUM annotations
/// (<c>{row}</c>) for counts; the Prometheus exporter turns them into <c>homeserver_stream_writer_appends_total</c> and so on.
/// </remarks>
public sealed class HomeserverMetrics : IDisposable
{
    public const string MeterName = "Homeserver";

    /// <summary>Rows per group-committed transaction, tagged with the stream and writer (read by the benchmark too).</summary>
    public const string WriterBatchSize = "homeserver.stream.writer.batch.size";

    /// <summary>A writer's transaction from allocating its positions to its commit, tagged as <see cref="WriterBatchSize"/>.</summary>
    public const string WriterCommitDuration = "homeserver.stream.writer.commit.duration";

    private static readonly IReadOnlyList<double> SecondsBuckets =
        [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
    private static readonly IReadOnlyList<int> BatchBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];
    // OpenTelemetry's semantic conventions advise these for http.server.request.duration (ASP.NET Core uses the same).
    private static readonly IReadOnlyList<double> HttpSecondsBuckets = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
    private static readonly HashSet<string> KnownMethods = new(StringComparer.Ordinal)
        { "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT" };

    private readonly Meter _meter;
    private readonly ConcurrentDictionary<WriterInstruments, byte> _writers = new();
    private readonly Counter<long> _appends;
    private readonly Histogram<int> _batchSize;
    private readonly Histogram<double> _commitDuration;
    private readonly Counter<long> _syncWakeups;
    private readonly Histogram<double> _syncWakeupDuration;
    private readonly Histogram<double> _httpRequestDuration;

    public HomeserverMetrics(IMeterFactory meters, SiloStreamReader reader, CacheRegistry caches, StreamNotifier notifier)
    {
        _meter = meters.Create(MeterName);

        // Stream writers active on this silo.
        _appends = _meter.CreateCounter<long>("homeserver.stream.writer.appends", "{row}",
            "Rows the stream writer committed.");
        _batchSize = _meter.CreateHistogram<int>(WriterBatchSize, "{row}",
            "Rows per group-committed transaction.", advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = BatchBuckets });
        _commitDuration = _meter.CreateHistogram<double>(WriterCommitDuration, "s",
            "From allocating a transaction's positions to its commit.", advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = SecondsBuckets });
        _meter.CreateObservableGauge("homeserver.stream.writer.position", () => Writers(w => w.Position), "{position}",
            "The stream writer's persisted position (everything up to it is committed and announced).");
        _meter.CreateObservableGauge("homeserver.stream.writer.epoch", () => Writers(w => w.Epoch), "{epoch}",
            "The activation's epoch: it rises with every new activation of the writer (a move, a failover).");

        // This process's reader, per stream writer it follows.
        _meter.CreateObservableGauge("homeserver.stream.reader.position", () => Cursors(reader, c => c.Position), "{position}",
            "How far this process's reader has applied the writer's rows.");
        _meter.CreateObservableGauge("homeserver.stream.reader.lag", () => Cursors(reader, c => c.Lag), "{position}",
            "Positions the writer announced that the reader has not applied yet.");
        _meter.CreateObservableGauge("homeserver.stream.reader.lag.duration", () => CursorSeconds(reader), "s",
            "How long the reader has been behind the newest position it knows of (0 when caught up).");
        _meter.CreateObservableCounter("homeserver.stream.reader.applied", () => Cursors(reader, c => c.Applied), "{row}",
            "Rows the reader applied (caches invalidated, waiters woken).");
        _meter.CreateObservableCounter("homeserver.stream.reader.gap_catch_ups", () => Cursors(reader, c => c.CatchUps), "{catch-up}",
            "Times the reader read the log because notifications had a gap (lost or too late).");
        _meter.CreateObservableCounter("homeserver.stream.reader.backstop_hits", () => Cursors(reader, c => c.BackstopHits), "{poll}",
            "Backstop polls that found the writer ahead of every notification received.");

        // This process's caches.
        _meter.CreateObservableUpDownCounter("homeserver.cache.entries", () => Caches(caches, c => c.Count), "{entry}",
            "Entries in the cache.");
        _meter.CreateObservableCounter("homeserver.cache.hits", () => Caches(caches, c => c.Hits), "{lookup}", "Cache lookups answered from memory.");
        _meter.CreateObservableCounter("homeserver.cache.misses", () => Caches(caches, c => c.Misses), "{lookup}", "Cache lookups that went to the database.");
        _meter.CreateObservableCounter("homeserver.cache.invalidations", () => Caches(caches, c => c.Invalidations), "{invalidation}",
            "Keys (or whole caches) dropped because a stream row changed them.");

        // Waiters and /sync.
        _meter.CreateObservableUpDownCounter("homeserver.stream.waiters", () => notifier.WaiterCount, "{waiter}",
            "Requests parked on this process's waiters (long-polls, read-your-writes waits).");
        _syncWakeups = _meter.CreateCounter<long>("homeserver.sync.wakeups", "{wakeup}",
            "Parked /sync long-polls woken by a change.");
        _syncWakeupDuration = _meter.CreateHistogram<double>("homeserver.sync.wakeup.duration", "s",
            "From a parked /sync being woken to its response being ready.", advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = SecondsBuckets });

        // HTTP requests, recorded by the front end's request middleware rather than ASP.NET Core's hosting meter: that
        // meter cost 7 % of the send benchmark's messages/s (and 12 % more CPU per message) where this one costs
        // nothing measurable (docs/benchmarks.md, issue 11). Same name, unit, buckets and attribute names.
        _httpRequestDuration = _meter.CreateHistogram<double>("http.server.request.duration", "s",
            "Duration of HTTP server requests, by route template, method and status.", advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = HttpSecondsBuckets });
    }

    /// <summary>The instruments of one writer activation; it reports until <see cref="WriterInstruments.Dispose"/>.</summary>
    public WriterInstruments Writer(string stream, int writer)
    {
        var instruments = new WriterInstruments(this, stream, writer);
        _writers[instruments] = 0;
        return instruments;
    }

    /// <summary>A parked /sync was woken by a change; returns the timestamp to hand to <see cref="SyncAnswered"/>.</summary>
    public long SyncWoken()
    {
        _syncWakeups.Add(1);
        return Stopwatch.GetTimestamp();
    }

    /// <summary>Whether anything listens to the HTTP request histogram (metrics on, the meter not excluded).</summary>
    public bool HttpRequestsEnabled => _httpRequestDuration.Enabled;

    /// <summary>One HTTP request answered: <paramref name="route"/> is the endpoint's template (null when no endpoint
    /// matched); methods outside HTTP's own are recorded as <c>_OTHER</c>, so a client cannot make up series.</summary>
    public void RequestServed(string method, string? route, int status, TimeSpan duration)
    {
        var tags = new TagList
        {
            { "http.request.method", KnownMethods.Contains(method) ? method : "_OTHER" },
            { "http.response.status_code", status },
        };
        if (route is not null) tags.Add("http.route", route);
        _httpRequestDuration.Record(duration.TotalSeconds, tags);
    }

    public void SyncAnswered(long wokenAt) => _syncWakeupDuration.Record(Stopwatch.GetElapsedTime(wokenAt).TotalSeconds);

    public void Dispose() => _meter.Dispose();

    /// <summary>One stream writer activation's series (tags <c>stream</c>, <c>writer</c>). Its tags are built once, so a
    /// commit records without allocating.</summary>
    public sealed class WriterInstruments : IDisposable
    {
        private readonly HomeserverMetrics _owner;
        internal readonly TagList Tags;
        private long _position, _epoch;

        internal WriterInstruments(HomeserverMetrics owner, string stream, int writer)
        {
            _owner = owner;
            Tags = new TagList { { "stream", stream }, { "writer", writer } };
        }

        public long Position { get => Volatile.Read(ref _position); set => Volatile.Write(ref _position, value); }
        public long Epoch { get => Volatile.Read(ref _epoch); set => Volatile.Write(ref _epoch, value); }

        /// <param name="started">A <see cref="Stopwatch.GetTimestamp"/> from before the positions were allocated.</param>
        public void Committed(int rows, long started)
        {
            _owner._appends.Add(rows, Tags);
            _owner._batchSize.Record(rows, Tags);
            _owner._commitDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, Tags);
        }

        public void Dispose() => _owner._writers.TryRemove(this, out _);
    }

    private IEnumerable<Measurement<long>> Writers(Func<WriterInstruments, long> value)
    {
        foreach (var w in _writers.Keys) yield return new Measurement<long>(value(w), w.Tags);
    }

    private static IEnumerable<Measurement<long>> Cursors(SiloStreamReader reader, Func<ReaderCursorStatus, long> value)
    {
        foreach (var c in reader.CursorStatus()) yield return new Measurement<long>(value(c), StreamTags(c));
    }

    private static IEnumerable<Measurement<double>> CursorSeconds(SiloStreamReader reader)
    {
        foreach (var c in reader.CursorStatus()) yield return new Measurement<double>(c.LagTime.TotalSeconds, StreamTags(c));
    }

    private static TagList StreamTags(ReaderCursorStatus c) => new() { { "stream", c.Stream }, { "writer", c.Writer } };

    private static IEnumerable<Measurement<long>> Caches(CacheRegistry caches, Func<CacheStatus, long> value)
    {
        foreach (var c in caches.Status()) yield return new Measurement<long>(value(c), new KeyValuePair<string, object?>("cache", c.Name));
    }
}

/// <summary>One reader cursor as metrics see it (read at scrape time).</summary>
public readonly record struct ReaderCursorStatus(
    string Stream, int Writer, long Position, long Lag, TimeSpan LagTime, long Applied, long CatchUps, long BackstopHits);

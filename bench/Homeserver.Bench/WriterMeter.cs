using System.Diagnostics;
using System.Diagnostics.Metrics;
using Homeserver.Observability;
using Homeserver.Streams;

namespace Homeserver.Bench;

/// <summary>
/// The events writers' commits as the server's own meter records them (<see cref="HomeserverMetrics.WriterBatchSize"/>
/// and <see cref="HomeserverMetrics.WriterCommitDuration"/>), read in this process while a phase runs: how many commits,
/// how many rows each, how long each took, and how much of the phase a writer spent committing. With one commit in
/// flight, a writer busy for nearly all of a phase is what bounds it: more senders then only make its batches longer.
/// </summary>
public sealed class WriterMeter : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly object _lock = new();
    private readonly List<double> _durations = [];
    private long _rows;
    private long _started = Stopwatch.GetTimestamp();

    public WriterMeter()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == HomeserverMetrics.MeterName
                && instrument.Name is HomeserverMetrics.WriterBatchSize or HomeserverMetrics.WriterCommitDuration)
                listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<int>((_, rows, tags, _) =>
        {
            if (!IsEvents(tags)) return;
            lock (_lock) _rows += rows;
        });
        _listener.SetMeasurementEventCallback<double>((_, seconds, tags, _) =>
        {
            if (!IsEvents(tags)) return;
            lock (_lock) _durations.Add(seconds * 1000);
        });
        _listener.Start();
    }

    private static bool IsEvents(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        foreach (var tag in tags)
            if (tag.Key == "stream") return tag.Value as string == StreamNames.Events;
        return false;
    }

    /// <summary>Starts a phase: what was recorded before is dropped.</summary>
    public void Reset()
    {
        lock (_lock)
        {
            _durations.Clear();
            _rows = 0;
            _started = Stopwatch.GetTimestamp();
        }
    }

    /// <summary>The phase so far, e.g. "events writer: 875 commits/s of 4.8 rows, commit p50 1.05 ms, busy 92 %".</summary>
    public string Describe()
    {
        lock (_lock)
        {
            if (_durations.Count == 0) return "events writer: no commits";
            var seconds = Stopwatch.GetElapsedTime(_started).TotalSeconds;
            var sorted = _durations.Order().ToList();
            return $"events writer: {_durations.Count / seconds:F0} commits/s of {(double)_rows / _durations.Count:F1} rows, " +
                   $"commit p50 {Stats.Percentile(sorted, 50):F2} ms, busy {_durations.Sum() / 1000 / seconds * 100:F0} %";
        }
    }

    public void Dispose() => _listener.Dispose();
}

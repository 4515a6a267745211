using System.Collections.Concurrent;

namespace Homeserver.Streams;

/// <summary>
/// Per key (a room), the last rows of a stream that this silo's reader applied, so the syncs a row wakes (one per
/// member) can read it from memory instead of the database. Bounded twice: each key keeps its last
/// <c>perKey</c> rows, and past <c>maxKeys</c> keys, or past <c>maxWeight</c> summed over every row held (with a
/// <c>weigh</c> function: bytes, since one room's rows may be a hundred times another's), the quietest tenth is dropped. A window is answered only when it is
/// held whole: not one starting before a key's oldest held row, nor (for a key without rows) one starting before the
/// highest position dropped with any key. Windows from before this silo started are the caller's to
/// refuse (<see cref="StreamNotifier.Tracks"/>).
/// </summary>
public sealed class RecentRows<T>(int perKey, int maxKeys, Func<T, int>? weigh = null, long maxWeight = long.MaxValue)
{
    private long _weight;

    private readonly ConcurrentDictionary<string, Log> _logs = new(StringComparer.Ordinal);
    // Positions of a stream come from one sequence whichever writer wrote them, so one bound serves every writer
    // (and a key whose rows moved writers, as a room's do when the events stream is resharded).
    private long _droppedKeysUpTo;
    private readonly Lock _dropping = new();

    /// <summary>Keys held (for the cache metrics).</summary>
    public int KeyCount => _logs.Count;

    /// <summary>The weight of every row held (for the cache metrics; 0 without a weigh function).</summary>
    public long Weight => Interlocked.Read(ref _weight);

    private sealed class Log(long heldAfter)
    {
        public readonly Lock Gate = new();
        public readonly List<(long Position, T Row)> Rows = [];
        /// <summary>Rows at or below this position are not held (never were, or trimmed).</summary>
        public long HeldAfter = heldAfter;
        /// <summary>The weight of <see cref="Rows"/>.</summary>
        public long Weight;
        /// <summary>Removed to bound memory: an add that raced the removal makes a new log.</summary>
        public bool Dropped;
        public long Last => Rows.Count == 0 ? HeldAfter : Rows[^1].Position;
    }

    /// <summary>Adds a row the reader applied (in position order per key). <paramref name="rewrite"/>, when given, is
    /// applied to the rows already held first (a redaction rewriting its target).</summary>
    public void Add(string key, long position, T row, Func<T, T>? rewrite = null)
    {
        if (!_logs.ContainsKey(key) && _logs.Count >= maxKeys) DropQuietestKeys();
        while (true)
        {
            // A new log holds nothing from before it was made, including what was dropped with its key earlier.
            var log = _logs.GetOrAdd(key, _ => new Log(Interlocked.Read(ref _droppedKeysUpTo)));
            lock (log.Gate)
            {
                if (log.Dropped) continue;
                var before = log.Weight;
                if (rewrite is not null)
                    for (var i = 0; i < log.Rows.Count; i++)
                    {
                        var rewritten = rewrite(log.Rows[i].Row);
                        if (weigh is not null) log.Weight += weigh(rewritten) - weigh(log.Rows[i].Row);
                        log.Rows[i] = (log.Rows[i].Position, rewritten);
                    }
                log.Rows.Add((position, row));
                if (weigh is not null) log.Weight += weigh(row);
                if (log.Rows.Count > perKey)
                {
                    log.HeldAfter = log.Rows[0].Position;
                    if (weigh is not null) log.Weight -= weigh(log.Rows[0].Row);
                    log.Rows.RemoveAt(0);
                }
                Interlocked.Add(ref _weight, log.Weight - before);
                break;
            }
        }
        if (Interlocked.Read(ref _weight) > maxWeight) DropQuietestKeys();
    }

    /// <summary>Every row of <paramref name="key"/> with position in (<paramref name="fromExclusive"/>,
    /// <paramref name="toInclusive"/>], in order; false when the window is not held whole.</summary>
    public bool TryGetWindow(string key, long fromExclusive, long toInclusive, out List<T> rows)
    {
        rows = [];
        if (!_logs.TryGetValue(key, out var log)) return fromExclusive >= Interlocked.Read(ref _droppedKeysUpTo);
        lock (log.Gate)
        {
            if (log.Dropped || log.HeldAfter > fromExclusive) return false;
            foreach (var (position, row) in log.Rows)
                if (position > fromExclusive && position <= toInclusive) rows.Add(row);
            return true;
        }
    }

    private void DropQuietestKeys()
    {
        lock (_dropping)
        {
            var overWeight = Interlocked.Read(ref _weight) > maxWeight;
            if (_logs.Count < maxKeys && !overWeight) return;
            // Past the weight, down to nine tenths of it (at least one key), so that a full cache does not drop on every add.
            var targetWeight = maxWeight - maxWeight / 10;
            var dropped = 0;
            foreach (var (key, log) in _logs.ToArray().OrderBy(kv => kv.Value.Last))
            {
                if (overWeight ? dropped > 0 && Interlocked.Read(ref _weight) <= targetWeight : dropped >= Math.Max(1, maxKeys / 10)) break;
                lock (log.Gate)
                {
                    log.Dropped = true;
                    if (log.Last > _droppedKeysUpTo) Interlocked.Exchange(ref _droppedKeysUpTo, log.Last);
                    _logs.TryRemove(key, out _);
                    Interlocked.Add(ref _weight, -log.Weight);
                }
                dropped++;
            }
        }
    }
}

using Homeserver.Streams;

namespace Homeserver.Streams;

/// <summary>
/// A writer's "persisted up to" with out-of-order completion: positions are handed out in order but transactions
/// may commit in any order; a position becomes visible only when every lower position of this writer has committed
/// or aborted. Committed rows are held back until then and released in position order. Not thread-safe: the writer
/// grain's turns serialise access.
/// </summary>
public sealed class PositionTracker(long persisted)
{
    private readonly SortedSet<long> _inFlight = [];
    private readonly SortedDictionary<long, StreamEntry?> _done = [];

    public long Persisted { get; private set; } = persisted;
    public bool Idle => _inFlight.Count == 0;

    /// <summary>Positions handed to a transaction that has not finished. Must be above everything seen so far.</summary>
    public void Allocated(IEnumerable<long> positions)
    {
        foreach (var p in positions)
        {
            if (p <= Persisted) throw new InvalidOperationException($"Position {p} allocated at or below persisted {Persisted}");
            _inFlight.Add(p);
        }
    }

    public void Committed(IReadOnlyList<StreamEntry> entries)
    {
        foreach (var e in entries)
        {
            _inFlight.Remove(e.Position);
            _done[e.Position] = e;
        }
    }

    public void Aborted(IEnumerable<long> positions)
    {
        foreach (var p in positions)
            if (_inFlight.Remove(p)) _done[p] = null;
    }

    /// <summary>
    /// Nothing of ours is in flight, so every later position we allocate will be above <paramref name="position"/>:
    /// we may claim it (an idle writer must not pin the minimum of a sharded stream).
    /// </summary>
    public bool AdvanceIdle(long position)
    {
        if (!Idle || _done.Count > 0 || position <= Persisted) return false;
        Persisted = position;
        return true;
    }

    /// <summary>Moves <see cref="Persisted"/> as far as completed positions allow; returns the rows now visible, in order.</summary>
    public List<StreamEntry> Release()
    {
        var released = new List<StreamEntry>();
        var limit = _inFlight.Count == 0 ? long.MaxValue : _inFlight.Min - 1;
        while (_done.Count > 0)
        {
            var first = _done.First();
            if (first.Key > limit) break;
            _done.Remove(first.Key);
            if (first.Value is not null) released.Add(first.Value);
            Persisted = Math.Max(Persisted, first.Key);
        }
        return released;
    }
}

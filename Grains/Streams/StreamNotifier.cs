using Homeserver.Streams;

namespace Homeserver.Streams;

/// <summary>
/// This silo's waiters. The reader reports every advance here after caches were invalidated; requests wait either for
/// a token (read-your-writes) or for a change to any of a set of keys after a token (long-poll <c>/sync</c>).
/// A waiting request holds a <see cref="TaskCompletionSource{TResult}"/> and nothing else: no thread, no timer of its
/// own; one shared sweep expires deadlines.
/// </summary>
public sealed class StreamNotifier : IDisposable
{
    /// <summary>Key that matches every row: for waiters interested in anything.</summary>
    public const string AnyKey = "*";

    private readonly Lock _lock = new();
    private StreamToken _current = StreamToken.Zero;
    private readonly Dictionary<string, HashSet<Waiter>> _byKey = new(StringComparer.Ordinal);
    private readonly List<Waiter> _tokenWaiters = [];
    private readonly PriorityQueue<Waiter, long> _deadlines = new();
    // Where each key last changed, per stream writer: lets a waiter that registers late see it missed a change.
    private readonly Dictionary<string, Dictionary<(string, int), long>> _lastChange = new(StringComparer.Ordinal);
    // _lastChange is bounded: the keys whose last change is oldest are dropped, and the highest position dropped per
    // writer is remembered, so a token older than that is answered "changed" (the caller then reads the database).
    private const int MaxTrackedKeys = 500_000;
    private readonly Dictionary<(string, int), long> _forgottenUpTo = [];
    private readonly Timer _sweep;
    // Writers per stream, learned from the reader's initial positions: lets the token's minimum rise.
    private readonly Dictionary<string, int> _writers = new(StringComparer.Ordinal);
    private readonly Dictionary<(string, int), long> _initial = [];

    // Waiters on key families, by stream and prefix, then by the family's id set (by reference: one shared set per room
    // snapshot, however many waiters name it).
    private readonly Dictionary<(string Stream, string Prefix), Dictionary<IReadOnlySet<string>, HashSet<Waiter>>> _byFamily = [];
    // The last keyed rows applied per stream, newest last, so that a family can be checked against what changed after a
    // token without looking up every id it holds; _recentFloor is, per writer, the highest position that fell out.
    private const int RecentPerStream = 4096;
    private readonly Dictionary<string, Queue<(int Writer, long Position, string Key)>> _recent = new(StringComparer.Ordinal);
    private readonly Dictionary<(string, int), long> _recentFloor = [];
    // Waiters woken only by a family that asks for its wake-ups to be gathered (presence): they stay registered, so a
    // row of any of their keys still completes them at once, and the sweep completes them once their hold is over.
    private readonly List<Waiter> _held = [];

    private sealed class Waiter
    {
        public required TaskCompletionSource<bool> Done { get; init; }
        public string[] Keys { get; init; } = [];
        public KeyFamily[] Families { get; init; } = [];
        public StreamToken? Target { get; init; }
        public long DeadlineTicks { get; init; }
        /// <summary>When a family wake-up held back completes it (<see cref="Environment.TickCount64"/>); 0 while not held.</summary>
        public long HeldUntil;
        public CancellationTokenRegistration Registration;
    }

    private static readonly TimeSpan SweepPeriod = TimeSpan.FromMilliseconds(50);
    // Whether the sweep timer runs (guarded by _lock). It runs only while a deadline is queued: an idle silo with no
    // long-polls would otherwise wake its thread pool twenty times a second for nothing.
    private bool _sweeping;

    public StreamNotifier()
    {
        _sweep = new Timer(_ => Sweep(), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>Everything this silo has applied: a token covering it is safe to serve here.</summary>
    public StreamToken Current
    {
        get { lock (_lock) return _current; }
    }

    /// <summary>Called by the reader, in order per writer, after the rows' caches were invalidated.</summary>
    public void Advanced(string stream, int writer, long position, IReadOnlyList<StreamEntry> entries)
    {
        List<Waiter>? wake = null;
        List<(Waiter, TimeSpan)>? hold = null;
        lock (_lock)
        {
            var writers = _writers.TryGetValue(stream, out var known) ? known : 0;
            if (writer >= writers) _writers[stream] = writers = writer + 1;
            _current = _current.Advance(stream, writer, position, writers);
            foreach (var e in entries)
            {
                if (e.Key is null) continue;
                if (!_lastChange.TryGetValue(e.Key, out var changes))
                {
                    if (_lastChange.Count >= MaxTrackedKeys) ForgetOldestKeys();
                    _lastChange[e.Key] = changes = [];
                }
                changes[(stream, writer)] = e.Position;
                if (_byKey.TryGetValue(e.Key, out var set)) (wake ??= []).AddRange(set);
                RememberRecent(stream, writer, e.Position, e.Key);
                if (_byFamily.Count > 0) WakeFamilies(stream, e.Key, ref wake, ref hold);
            }
            if (entries.Count > 0 && _byKey.TryGetValue(AnyKey, out var any)) (wake ??= []).AddRange(any);
            for (var i = _tokenWaiters.Count - 1; i >= 0; i--)
            {
                if (!_current.Covers(_tokenWaiters[i].Target!)) continue;
                (wake ??= []).Add(_tokenWaiters[i]);
            }
            if (wake is not null) foreach (var w in wake) Remove(w);
            if (hold is not null)
                foreach (var (w, delay) in hold)
                    if (!w.Done.Task.IsCompleted && (wake is null || !wake.Contains(w))) Hold(w, delay);
        }
        if (wake is not null) foreach (var w in wake) Complete(w, true);
    }

    // Caller holds the lock. The first held wake-up of a waiter sets when it completes; later ones gather into it.
    private void Hold(Waiter w, TimeSpan delay)
    {
        if (w.HeldUntil != 0) return;
        w.HeldUntil = Math.Min(w.DeadlineTicks, Environment.TickCount64 + (long)delay.TotalMilliseconds);
        _held.Add(w);
    }

    /// <summary>Sets the starting position of a writer (a silo joining follows from the writer's current position).</summary>
    public void Initialise(string stream, int writer, long position)
    {
        lock (_lock) _initial[(stream, writer)] = position;
        Advanced(stream, writer, position, []);
    }

    /// <summary>Whether <see cref="ChangedSince"/> can answer for every stream from <paramref name="since"/>.</summary>
    public bool TracksAll(StreamToken since)
    {
        lock (_lock)
        {
            if (_initial.Count == 0) return false;
            foreach (var ((stream, writer), position) in _initial)
                if (since.Get(stream, writer) < position) return false;
            return true;
        }
    }

    /// <summary>
    /// Whether <see cref="ChangedSince"/> can answer for <paramref name="stream"/> from <paramref name="since"/>: only
    /// rows applied after this silo started are tracked, so a token from before that must go to the database.
    /// </summary>
    public bool Tracks(string stream, StreamToken since)
    {
        lock (_lock)
        {
            var any = false;
            foreach (var ((s, writer), position) in _initial)
            {
                if (s != stream) continue;
                any = true;
                if (since.Get(stream, writer) < position) return false;
            }
            return any;
        }
    }

    /// <summary>Completes with true once this silo has applied everything up to <paramref name="target"/>; false on timeout.</summary>
    public Task<bool> WaitForTokenAsync(StreamToken target, TimeSpan timeout, CancellationToken ct = default)
    {
        lock (_lock)
        {
            if (_current.Covers(target)) return Task.FromResult(true);
            var w = NewWaiter([], [], target, timeout, ct);
            _tokenWaiters.Add(w);
            return w.Done.Task;
        }
    }

    /// <summary>Completes with true as soon as a row with one of <paramref name="keys"/>, or of one of
    /// <paramref name="families"/>, is applied after <paramref name="since"/> (at once if that already happened); false
    /// on timeout or cancellation.</summary>
    public Task<bool> WaitForChangeAsync(StreamToken since, IReadOnlyCollection<string> keys, TimeSpan timeout, CancellationToken ct = default,
        IReadOnlyCollection<KeyFamily>? families = null)
    {
        lock (_lock)
        {
            if (ChangedSince(since, keys)) return Task.FromResult(true);
            // A family that changed since the token wakes at once unless it gathers its wake-ups: then the waiter
            // registers already held, so a poll that comes straight back after a presence-only answer waits out the hold.
            TimeSpan? heldFor = null;
            if (families is not null)
                foreach (var family in families)
                {
                    if (!FamilyChangedSince(since, family)) continue;
                    if (family.WakeDelay <= TimeSpan.Zero) return Task.FromResult(true);
                    heldFor = heldFor is { } h && h < family.WakeDelay ? h : family.WakeDelay;
                }
            if (timeout <= TimeSpan.Zero || ct.IsCancellationRequested) return Task.FromResult(heldFor is not null);
            var w = NewWaiter(keys.ToArray(), families?.ToArray() ?? [], null, timeout, ct);
            if (heldFor is { } delay) Hold(w, delay);
            foreach (var key in w.Keys)
            {
                if (!_byKey.TryGetValue(key, out var set)) _byKey[key] = set = [];
                set.Add(w);
            }
            foreach (var family in w.Families)
            {
                if (!_byFamily.TryGetValue((family.Stream, family.Prefix), out var bySet))
                    _byFamily[(family.Stream, family.Prefix)] = bySet = new(ReferenceEqualityComparer.Instance);
                if (!bySet.TryGetValue(family.Ids, out var set)) bySet[family.Ids] = set = [];
                set.Add(w);
            }
            return w.Done.Task;
        }
    }

    /// <summary>True if a row with one of the keys, or of one of the families, was applied here after <paramref name="since"/>.</summary>
    public bool ChangedSince(StreamToken since, IReadOnlyCollection<string> keys, string? onlyStream = null, IReadOnlyCollection<KeyFamily>? families = null)
    {
        lock (_lock)
        {
            foreach (var ((stream, writer), position) in _forgottenUpTo)
                if ((onlyStream is null || stream == onlyStream) && since.Get(stream, writer) < position) return true;
            foreach (var key in keys)
            {
                if (key == AnyKey) { if (!since.Covers(_current)) return true; continue; }
                if (!_lastChange.TryGetValue(key, out var changes)) continue;
                foreach (var ((stream, writer), position) in changes)
                    if ((onlyStream is null || stream == onlyStream) && position > since.Get(stream, writer)) return true;
            }
            if (families is not null)
                foreach (var family in families)
                    if ((onlyStream is null || family.Stream == onlyStream) && FamilyChangedSince(since, family)) return true;
            return false;
        }
    }

    /// <summary>
    /// The ids (key without <paramref name="prefix"/>) of the rows of <paramref name="stream"/> applied here after
    /// <paramref name="since"/>, when this silo still holds them all among its recent rows; false when it cannot tell.
    /// Lets a reader ask the database about the few users whose presence changed rather than every member of a room.
    /// </summary>
    public bool TryGetChangedIds(StreamToken since, string stream, string prefix, out HashSet<string> ids)
    {
        ids = new HashSet<string>(StringComparer.Ordinal);
        lock (_lock)
        {
            if (!Tracks(stream, since)) return false; // re-enters the lock
            foreach (var ((s, writer), position) in _forgottenUpTo)
                if (s == stream && since.Get(stream, writer) < position) return false;
            foreach (var ((s, writer), floor) in _recentFloor)
                if (s == stream && since.Get(stream, writer) < floor) return false;
            if (!_recent.TryGetValue(stream, out var recent)) return true;
            foreach (var (writer, position, key) in recent)
                if (position > since.Get(stream, writer) && key.StartsWith(prefix, StringComparison.Ordinal)) ids.Add(key[prefix.Length..]);
            return true;
        }
    }

    // Caller holds the lock. Usually the token is recent and the rows after it are few: those are checked against the
    // family. A token older than what the recent rows hold checks every id of the family instead.
    private bool FamilyChangedSince(StreamToken since, KeyFamily family)
    {
        var covered = true;
        foreach (var ((stream, writer), floor) in _recentFloor)
            if (stream == family.Stream && since.Get(stream, writer) < floor) covered = false;
        if (!covered)
        {
            foreach (var id in family.Ids)
            {
                if (id == family.Except || !_lastChange.TryGetValue(family.Prefix + id, out var changes)) continue;
                foreach (var ((stream, writer), position) in changes)
                    if (stream == family.Stream && position > since.Get(stream, writer)) return true;
            }
            return false;
        }
        if (!_recent.TryGetValue(family.Stream, out var recent)) return false;
        foreach (var (writer, position, key) in recent)
            if (position > since.Get(family.Stream, writer) && family.Matches(key)) return true;
        return false;
    }

    // Caller holds the lock.
    private void RememberRecent(string stream, int writer, long position, string key)
    {
        if (!_recent.TryGetValue(stream, out var recent)) _recent[stream] = recent = new();
        if (recent.Count >= RecentPerStream)
        {
            var (oldWriter, oldPosition, _) = recent.Dequeue();
            _recentFloor[(stream, oldWriter)] = Math.Max(_recentFloor.GetValueOrDefault((stream, oldWriter)), oldPosition);
        }
        recent.Enqueue((writer, position, key));
    }

    // Caller holds the lock. A row's key checked against each distinct family of its stream: as many lookups as there
    // are rooms being waited on, not as many as their members.
    private void WakeFamilies(string stream, string key, ref List<Waiter>? wake, ref List<(Waiter, TimeSpan)>? hold)
    {
        foreach (var ((familyStream, prefix), bySet) in _byFamily)
        {
            if (familyStream != stream || !key.StartsWith(prefix, StringComparison.Ordinal)) continue;
            var id = key[prefix.Length..];
            foreach (var (ids, waiters) in bySet)
            {
                if (!ids.Contains(id)) continue;
                foreach (var w in waiters)
                {
                    var family = w.Families.FirstOrDefault(f => ReferenceEquals(f.Ids, ids) && f.Matches(key));
                    if (family is null) continue;
                    if (family.WakeDelay > TimeSpan.Zero) (hold ??= []).Add((w, family.WakeDelay));
                    else (wake ??= []).Add(w);
                }
            }
        }
    }

    // Caller holds the lock. Drops a tenth of the keys, those whose latest change is oldest.
    private void ForgetOldestKeys()
    {
        var victims = _lastChange.OrderBy(kv => kv.Value.Values.Max()).Take(MaxTrackedKeys / 10).ToList();
        foreach (var (key, changes) in victims)
        {
            foreach (var (writer, position) in changes)
                _forgottenUpTo[writer] = Math.Max(_forgottenUpTo.GetValueOrDefault(writer), position);
            _lastChange.Remove(key);
        }
    }

    public int WaiterCount
    {
        get
        {
            lock (_lock)
                return _tokenWaiters.Count + _byKey.Values.SelectMany(s => s)
                    .Concat(_byFamily.Values.SelectMany(bySet => bySet.Values.SelectMany(s => s))).Distinct().Count();
        }
    }

    private Waiter NewWaiter(string[] keys, KeyFamily[] families, StreamToken? target, TimeSpan timeout, CancellationToken ct)
    {
        var w = new Waiter
        {
            Done = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously),
            Keys = keys,
            Families = families,
            Target = target,
            DeadlineTicks = Environment.TickCount64 + (long)Math.Min(timeout.TotalMilliseconds, int.MaxValue),
        };
        _deadlines.Enqueue(w, w.DeadlineTicks);
        if (!_sweeping)
        {
            _sweeping = true;
            _sweep.Change(SweepPeriod, SweepPeriod);
        }
        if (ct.CanBeCanceled) w.Registration = ct.Register(() => Expire(w));
        return w;
    }

    private void Expire(Waiter w)
    {
        lock (_lock) Remove(w);
        Complete(w, false);
    }

    // Caller holds the lock.
    private void Remove(Waiter w)
    {
        if (w.Target is not null) _tokenWaiters.Remove(w);
        foreach (var key in w.Keys)
            if (_byKey.TryGetValue(key, out var set) && set.Remove(w) && set.Count == 0) _byKey.Remove(key);
        foreach (var family in w.Families)
            if (_byFamily.TryGetValue((family.Stream, family.Prefix), out var bySet) && bySet.TryGetValue(family.Ids, out var set)
                && set.Remove(w) && set.Count == 0 && bySet.Remove(family.Ids) && bySet.Count == 0)
                _byFamily.Remove((family.Stream, family.Prefix));
    }

    private static void Complete(Waiter w, bool changed)
    {
        if (w.Done.TrySetResult(changed)) w.Registration.Dispose();
    }

    private void Sweep()
    {
        var now = Environment.TickCount64;
        List<Waiter>? expired = null;
        List<Waiter>? matured = null;
        lock (_lock)
        {
            for (var i = _held.Count - 1; i >= 0; i--)
            {
                var h = _held[i];
                if (!h.Done.Task.IsCompleted && h.HeldUntil > now) continue;
                _held.RemoveAt(i);
                if (h.Done.Task.IsCompleted) continue;
                Remove(h);
                (matured ??= []).Add(h);
            }
            while (_deadlines.TryPeek(out var w, out var deadline) && deadline <= now)
            {
                _deadlines.Dequeue();
                if (w.Done.Task.IsCompleted) continue;
                Remove(w);
                (expired ??= []).Add(w);
            }
            // Completed waiters leave their deadline entry behind; drop them in bulk so the queue stays small.
            if (_deadlines.Count > 1024 && _deadlines.Count > 4 * (_tokenWaiters.Count + _byKey.Count + 1))
            {
                var live = _deadlines.UnorderedItems.Where(i => !i.Element.Done.Task.IsCompleted).ToList();
                _deadlines.Clear();
                foreach (var (w, d) in live) _deadlines.Enqueue(w, d);
            }
            if (_deadlines.Count == 0 && _sweeping)
            {
                _sweeping = false;
                _sweep.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            }
        }
        if (matured is not null) foreach (var w in matured) Complete(w, true);
        if (expired is not null) foreach (var w in expired) Complete(w, false);
    }

    public void Dispose() => _sweep.Dispose();
}

/// <summary>
/// The keys of one stream made of <paramref name="Prefix"/> and one of <paramref name="Ids"/> (presence:
/// <c>"presence/" + user</c> for every member of a room), but not <paramref name="Except"/>'s. A long-poll that
/// follows every member of a big room names the room's one shared member set instead of a key per member, so
/// parking 1,000 of them costs 1,000 registrations, not ten million. A <paramref name="WakeDelay"/> above zero holds a
/// waiter woken only by the family that long, gathering what else changes meanwhile (1,000 members coming online would
/// otherwise answer each poll 999 times); a row of any of the waiter's keys still completes it at once.
/// </summary>
public sealed record KeyFamily(string Stream, string Prefix, IReadOnlySet<string> Ids, string? Except = null, TimeSpan WakeDelay = default)
{
    public bool Matches(string key) =>
        key.StartsWith(Prefix, StringComparison.Ordinal) && Ids.Contains(key[Prefix.Length..]) && !(Except is not null && key.AsSpan(Prefix.Length).SequenceEqual(Except));
}

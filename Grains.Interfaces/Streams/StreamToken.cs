using System.Globalization;
using System.Text;
using Homeserver.Errors;

namespace Homeserver.Streams;

/// <summary>
/// A position in every stream: what a client has seen. For each stream, the positions of its writers as a minimum
/// plus the writers ahead of it (Synapse's multi-writer "m" tokens); a writer not named is at the minimum.
/// Tokens compare and merge writer by writer. Serialised as an opaque, versioned, URL-safe string:
/// <c>v1_{field}_{field}...</c>, one field per stream in <see cref="StreamNames.All"/> order, each
/// <c>{min}(~{writer}.{position})*</c>.
/// </summary>
[GenerateSerializer, Immutable]
public sealed class StreamToken : IEquatable<StreamToken>
{
    private const string Version = "v1";

    /// <summary>Per stream, in <see cref="StreamNames.All"/> order.</summary>
    [Id(0)] private readonly StreamPosition[] _streams;

    private StreamToken(StreamPosition[] streams) => _streams = streams;

    public static readonly StreamToken Zero = new(StreamNames.All.Select(_ => StreamPosition.Zero).ToArray());

    private static int Index(string stream)
    {
        for (var i = 0; i < StreamNames.All.Count; i++)
            if (StreamNames.All[i] == stream) return i;
        throw new ArgumentException($"Unknown stream '{stream}'", nameof(stream));
    }

    public StreamPosition this[string stream] => _streams[Index(stream)];

    /// <summary>The position of one writer of a stream.</summary>
    public long Get(string stream, int writer) => this[stream].Get(writer);

    /// <summary>The lowest position of any writer: everything at or below it is included, whichever writer wrote it.</summary>
    public long Min(string stream) => this[stream].Min;

    /// <summary>This token with one writer moved forward to <paramref name="position"/> (never backwards).</summary>
    public StreamToken Advance(string stream, int writer, long position)
    {
        var i = Index(stream);
        var copy = (StreamPosition[])_streams.Clone();
        copy[i] = copy[i].Advance(writer, position);
        return new StreamToken(copy);
    }

    /// <summary>This token with one writer moved forward, knowing the stream has <paramref name="writers"/> writers
    /// (0..writers-1), so the minimum rises once every writer has passed it.</summary>
    public StreamToken Advance(string stream, int writer, long position, int writers)
    {
        var i = Index(stream);
        var copy = (StreamPosition[])_streams.Clone();
        copy[i] = copy[i].Advance(writer, position, writers);
        return new StreamToken(copy);
    }

    /// <summary>This token with one stream replaced.</summary>
    public StreamToken With(string stream, StreamPosition position)
    {
        var copy = (StreamPosition[])_streams.Clone();
        copy[Index(stream)] = position;
        return new StreamToken(copy);
    }

    /// <summary>True when this token is at or past <paramref name="other"/> for every writer of every stream.</summary>
    public bool Covers(StreamToken other)
    {
        for (var i = 0; i < _streams.Length; i++)
            if (!_streams[i].Covers(other._streams[i])) return false;
        return true;
    }

    /// <summary>Writer-by-writer maximum.</summary>
    public StreamToken Merge(StreamToken other)
    {
        var merged = new StreamPosition[_streams.Length];
        for (var i = 0; i < merged.Length; i++) merged[i] = _streams[i].Merge(other._streams[i]);
        return new StreamToken(merged);
    }

    public string Serialize()
    {
        var sb = new StringBuilder(Version);
        foreach (var s in _streams)
        {
            sb.Append('_').Append(s.Min.ToString(CultureInfo.InvariantCulture));
            foreach (var (writer, position) in s.Ahead)
                sb.Append('~').Append(writer.ToString(CultureInfo.InvariantCulture)).Append('.').Append(position.ToString(CultureInfo.InvariantCulture));
        }
        return sb.ToString();
    }

    public override string ToString() => Serialize();

    public static bool TryParse(string? text, out StreamToken token)
    {
        token = Zero;
        if (string.IsNullOrEmpty(text) || text.Length > 4096) return false;
        var fields = text.Split('_');
        if (fields.Length != StreamNames.All.Count + 1 || fields[0] != Version) return false;
        var streams = new StreamPosition[StreamNames.All.Count];
        for (var i = 0; i < streams.Length; i++)
        {
            var parts = fields[i + 1].Split('~');
            if (!TryParseNumber(parts[0], out var min)) return false;
            var ahead = new SortedDictionary<int, long>();
            for (var p = 1; p < parts.Length; p++)
            {
                var dot = parts[p].IndexOf('.');
                if (dot <= 0
                    || !TryParseNumber(parts[p][..dot], out var writer) || writer > int.MaxValue
                    || !TryParseNumber(parts[p][(dot + 1)..], out var position)
                    || position <= min || !ahead.TryAdd((int)writer, position))
                    return false;
            }
            streams[i] = new StreamPosition(min, ahead.Keys.ToArray(), ahead.Values.ToArray());
        }
        token = new StreamToken(streams);
        return true;
    }

    /// <summary>Parses a token a client sent; a malformed one is a client error, never a 500.</summary>
    public static StreamToken Parse(string text, string parameter = "since") =>
        TryParse(text, out var token)
            ? token
            : throw new MatrixException(ErrorCodes.InvalidParam, $"Malformed '{parameter}' token", 400);

    private static bool TryParseNumber(string s, out long value)
    {
        value = 0;
        if (s.Length is 0 or > 19) return false;
        foreach (var c in s) if (c is < '0' or > '9') return false;
        if (s.Length > 1 && s[0] == '0') return false;
        return long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out value);
    }

    public bool Equals(StreamToken? other) => other is not null && Serialize() == other.Serialize();
    public override bool Equals(object? obj) => Equals(obj as StreamToken);
    public override int GetHashCode() => Serialize().GetHashCode(StringComparison.Ordinal);
}

/// <summary>One stream's part of a token: a minimum and the writers ahead of it (sorted by writer).</summary>
[GenerateSerializer, Immutable]
public sealed class StreamPosition
{
    [Id(0)] public long Min { get; }
    [Id(1)] private readonly int[] _writers;
    [Id(2)] private readonly long[] _positions;

    public static readonly StreamPosition Zero = new(0, [], []);

    public StreamPosition(long min, int[] writers, long[] positions)
    {
        Min = min;
        _writers = writers;
        _positions = positions;
    }

    /// <summary>From every writer's position: the minimum becomes <see cref="Min"/>, the rest are "ahead".</summary>
    public static StreamPosition FromWriters(IReadOnlyDictionary<int, long> writers)
    {
        if (writers.Count == 0) return Zero;
        var min = writers.Values.Min();
        var ahead = writers.Where(kv => kv.Value > min).OrderBy(kv => kv.Key).ToArray();
        return new StreamPosition(min, ahead.Select(kv => kv.Key).ToArray(), ahead.Select(kv => kv.Value).ToArray());
    }

    public IEnumerable<(int Writer, long Position)> Ahead => _writers.Zip(_positions);

    /// <summary>The highest position of any writer.</summary>
    public long Max => _positions.Length == 0 ? Min : Math.Max(Min, _positions.Max());

    public long Get(int writer)
    {
        var i = Array.BinarySearch(_writers, writer);
        return i >= 0 ? _positions[i] : Min;
    }

    // A loop, not Ahead's enumerator: the notifier asks this of every read-your-writes waiter on every advance.
    public bool Covers(StreamPosition other)
    {
        if (Min < other.Min) return false;
        for (var i = 0; i < other._writers.Length; i++)
            if (Get(other._writers[i]) < other._positions[i]) return false;
        return true;
    }

    // A writer not named by either side is at max(minA, minB); a named one at max(a, b) which is never below that,
    // so the merged minimum is max(minA, minB).
    public StreamPosition Merge(StreamPosition other)
    {
        var min = Math.Max(Min, other.Min);
        var ahead = new SortedDictionary<int, long>();
        foreach (var w in _writers.Concat(other._writers).Distinct())
        {
            var p = Math.Max(Get(w), other.Get(w));
            if (p > min) ahead[w] = p;
        }
        return new StreamPosition(min, ahead.Keys.ToArray(), ahead.Values.ToArray());
    }

    /// <summary>With a known writer count, a minimum that every writer has passed rises to the lowest of them.</summary>
    public StreamPosition Normalise(int writers)
    {
        if (writers <= 0 || _writers.Length < writers) return this;
        var all = new Dictionary<int, long>();
        for (var w = 0; w < writers; w++) all[w] = Get(w);
        foreach (var (w, p) in Ahead) all[w] = p;
        var normal = FromWriters(all);
        return normal.Min > Min ? normal : this;
    }

    /// <summary>One writer moved forward in a stream of <paramref name="writers"/> writers. With a single writer its
    /// position is the minimum (the common case on every applied notification: no collections built).</summary>
    public StreamPosition Advance(int writer, long position, int writers)
    {
        if (Get(writer) >= position) return this;
        return writers == 1 && writer == 0 ? new StreamPosition(position, [], []) : Advance(writer, position).Normalise(writers);
    }

    // Moving one writer forward cannot lower the minimum: writers not named stay at the old minimum.
    public StreamPosition Advance(int writer, long position)
    {
        if (Get(writer) >= position) return this;
        var ahead = new SortedDictionary<int, long>();
        foreach (var (w, p) in Ahead) ahead[w] = p;
        ahead[writer] = position;
        return new StreamPosition(Min, ahead.Keys.ToArray(), ahead.Values.ToArray());
    }
}

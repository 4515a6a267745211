using System.Runtime.CompilerServices;

namespace Homeserver.Matrix;

/// <summary>
/// The members of a JSON object, found in its bytes without reading its tokens: each as its bytes from its name to its
/// value's end, its name's bytes between the quotes, and its value's bytes. For JSON known to be valid (an event as
/// stored, parsed before it was stored): it finds where each member ends and checks nothing else. <see cref="Failed"/>:
/// the object ended otherwise than expected, or a name holds an escape, which only a reader compares as the name it
/// spells. Compiled optimised from its first call (<see cref="MethodImplOptions.AggressiveOptimization"/>): what it
/// serves runs 90,000 times in the first full-state sync after a restart, when the JSON reader's own search would still
/// run unoptimised.
/// </summary>
public ref struct StoredJsonMembers(ReadOnlySpan<byte> json)
{
    private readonly ReadOnlySpan<byte> _json = json;
    private int _at;
    private bool _started;

    public bool Failed { get; private set; }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public bool Next(out ReadOnlySpan<byte> member, out ReadOnlySpan<byte> key, out ReadOnlySpan<byte> value)
    {
        member = key = value = default;
        var i = SkipWhitespace(_json, _at);
        if (!_started)
        {
            if (i >= _json.Length || _json[i] != (byte)'{') return Fail();
            _started = true;
            i = SkipWhitespace(_json, i + 1);
            if (i < _json.Length && _json[i] == (byte)'}') return false;
        }
        else
        {
            if (i >= _json.Length) return Fail();
            if (_json[i] == (byte)'}') return false;
            if (_json[i] != (byte)',') return Fail();
            i = SkipWhitespace(_json, i + 1);
        }
        if (i >= _json.Length || _json[i] != (byte)'"') return Fail();
        var memberStart = i;
        var keyEnd = SkipString(_json, i, out var escaped);
        if (keyEnd < 0 || escaped) return Fail();
        key = _json[(memberStart + 1)..(keyEnd - 1)];
        i = SkipWhitespace(_json, keyEnd);
        if (i >= _json.Length || _json[i] != (byte)':') return Fail();
        var valueStart = SkipWhitespace(_json, i + 1);
        var valueEnd = SkipValue(_json, valueStart);
        if (valueEnd < 0) return Fail();
        member = _json[memberStart..valueEnd];
        value = _json[valueStart..valueEnd];
        _at = valueEnd;
        return true;
    }

    private bool Fail()
    {
        Failed = true;
        return false;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int SkipWhitespace(ReadOnlySpan<byte> json, int i)
    {
        while (i < json.Length && json[i] is (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\r') i++;
        return i;
    }

    // From the opening quote at i to just past the closing one; -1 past the end. A loop of its own rather than
    // the span search helpers, which a new process runs unoptimised at first too.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int SkipString(ReadOnlySpan<byte> json, int i, out bool escaped)
    {
        escaped = false;
        for (i++; i < json.Length; i++)
        {
            if (json[i] == (byte)'"') return i + 1;
            if (json[i] != (byte)'\\') continue;
            escaped = true;
            i++;
        }
        return -1;
    }

    // From the value's first byte at i to just past its last; -1 past the end.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int SkipValue(ReadOnlySpan<byte> json, int i)
    {
        if (i >= json.Length) return -1;
        switch (json[i])
        {
            case (byte)'"':
                return SkipString(json, i, out _);
            case (byte)'{' or (byte)'[':
                var depth = 0;
                while (i < json.Length)
                {
                    switch (json[i])
                    {
                        case (byte)'"':
                            i = SkipString(json, i, out _);
                            if (i < 0) return -1;
                            continue;
                        case (byte)'{' or (byte)'[':
                            depth++;
                            break;
                        case (byte)'}' or (byte)']':
                            if (--depth == 0) return i + 1;
                            break;
                    }
                    i++;
                }
                return -1;
            default: // a number, true, false or null: up to the next delimiter
                var start = i;
                while (i < json.Length && json[i] is not ((byte)',' or (byte)'}' or (byte)']' or (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\r')) i++;
                return i > start ? i : -1; // no value where one must be
        }
    }
}

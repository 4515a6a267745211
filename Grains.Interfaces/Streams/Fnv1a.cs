namespace Homeserver.Streams;

/// <summary>Hashes that every process computes alike (unlike <see cref="string.GetHashCode()"/>, randomised per process).</summary>
public static class Fnv1a
{
    /// <summary>64-bit FNV-1a over the string's UTF-16 code units.</summary>
    public static ulong Hash64(string s)
    {
        var h = 14695981039346656037UL;
        foreach (var c in s) h = (h ^ c) * 1099511628211UL;
        return h;
    }
}

using System.Text;

namespace Homeserver.Streams;

/// <summary>FNV-1a hashes, which every process computes alike (unlike <see cref="string.GetHashCode()"/>, randomised
/// per process): room shards, writer homes and transaction-id hints are decided with them on every silo.</summary>
public static class Fnv1a
{
    /// <summary>32-bit FNV-1a over the string's UTF-8 bytes.</summary>
    public static uint Hash32Utf8(string s)
    {
        uint h = 2166136261;
        foreach (var b in Encoding.UTF8.GetBytes(s)) h = (h ^ b) * 16777619;
        return h;
    }

    /// <summary>64-bit FNV-1a over the string's UTF-16 code units.</summary>
    public static ulong Hash64(string s)
    {
        var h = 14695981039346656037UL;
        foreach (var c in s) h = (h ^ c) * 1099511628211UL;
        return h;
    }
}

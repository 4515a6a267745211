using System.Text;

namespace Homeserver.Streams;

/// <summary>Which writer of the <c>events</c> stream owns a room: a stable hash, so all of a room's events are totally ordered.</summary>
public static class EventShards
{
    public static int WriterFor(string roomId, int writers)
    {
        if (writers <= 1) return 0;
        // FNV-1a over UTF-8: stable across processes and .NET versions, unlike string.GetHashCode.
        uint hash = 2166136261;
        foreach (var b in Encoding.UTF8.GetBytes(roomId))
        {
            hash ^= b;
            hash *= 16777619;
        }
        return (int)(hash % (uint)writers);
    }
}

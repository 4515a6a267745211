namespace Homeserver.Streams;

/// <summary>Which writer of the <c>events</c> stream owns a room: a stable hash, so all of a room's events are totally ordered.</summary>
public static class EventShards
{
    public static int WriterFor(string roomId, int writers) =>
        writers <= 1 ? 0 : (int)(Fnv1a.Hash32Utf8(roomId) % (uint)writers);
}

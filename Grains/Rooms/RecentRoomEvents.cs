using System.Text;
using Homeserver.Caches;
using Homeserver.Matrix;
using Homeserver.Streams;

namespace Homeserver.Rooms;

/// <summary>
/// The events this silo's reader applied lately, per room (<see cref="RecentRows{T}"/>), so that the syncs a new
/// event wakes read it from memory rather than the database. A redaction rewrites the room's copy of its target.
/// </summary>
public sealed class RecentRoomEvents
{
    /// <summary>Its name among the caches (<c>Homeserver:Caches:Sizes</c>, metrics): the rooms held.</summary>
    public const string Cache = "rooms.recent_events";
    /// <summary>The events held per room.</summary>
    public const string PerRoom = "rooms.recent_events.per_room";
    /// <summary>The bytes held, summed over the rooms (the events' UTF-8 JSON and their records).</summary>
    public const string Bytes = "rooms.recent_events.bytes";

    /// <summary>A long-poll woken by an event reads the few events since its token; 32 covers a burst between two polls.
    /// A window the cache does not hold is read from the database.</summary>
    public const int DefaultPerRoom = 32;
    public const int DefaultRooms = 20_000;
    public const int DefaultBytes = 64 * 1024 * 1024;

    private readonly RecentRows<StoredEvent> _rows;

    public RecentRoomEvents(CacheRegistry? caches = null)
    {
        _rows = new(perKey: caches?.SizeOf(PerRoom, DefaultPerRoom) ?? DefaultPerRoom, maxKeys: caches?.SizeOf(Cache, DefaultRooms) ?? DefaultRooms,
            weigh: Weight, maxWeight: caches?.SizeOf(Bytes, DefaultBytes) ?? DefaultBytes);
        caches?.Track(Cache, () => new CacheStatus(Cache, _rows.KeyCount, 0, 0, 0));
        caches?.Track(Bytes, () => new CacheStatus(Bytes, (int)Math.Min(int.MaxValue, _rows.Weight), 0, 0, 0));
    }

    /// <summary>What an event held here costs: its UTF-8 JSON and the record with its other strings, about 200 bytes.</summary>
    public static int Weight(StoredEvent e) => e.Utf8Json.Length + 200;

    /// <summary>Called by the rooms' row handler for every event row, in stream order per room.</summary>
    public void Applied(StreamEntry entry, RoomEventRow row, StoredEvent? stored = null)
    {
        Func<StoredEvent, StoredEvent>? redact = row is { Redacts: { } target, RedactedJson: { } redacted }
            ? e => e.EventId == target ? e with { Utf8Json = Encoding.UTF8.GetBytes(redacted), Redacted = true } : e
            : null;
        _rows.Add(row.RoomId, entry.Position, stored ?? ToStoredEvent(entry, row), redact);
    }

    /// <summary>The event a row carries, as <see cref="RoomEventStore"/> would read it back.</summary>
    public static StoredEvent ToStoredEvent(StreamEntry entry, RoomEventRow row) =>
        // A member event's sender is usually its state key: one string for both.
        new(row.EventId, row.RoomId, EventStrings.Type(row.Type), row.StateKey, row.StateKey is { } key && key == row.Sender ? key : row.Sender,
            row.OriginServerTs, row.Topological, entry.Writer, entry.Position, row.Json, row.DeviceId, row.TxnId, false);

    /// <summary>
    /// As <see cref="RoomEventStore.GetEventsByStreamAsync"/>: the latest <paramref name="limit"/> events with stream
    /// position in (<paramref name="fromExclusive"/>, <paramref name="toInclusive"/>]; false when memory does not
    /// hold the whole window.
    /// </summary>
    public bool TryGet(string roomId, long fromExclusive, long toInclusive, int limit, out IReadOnlyList<StoredEvent> events, out bool limited)
    {
        events = [];
        limited = false;
        if (!_rows.TryGetWindow(roomId, fromExclusive, toInclusive, out var window)) return false;
        limited = window.Count > limit;
        events = window.Skip(Math.Max(0, window.Count - limit)).ToList();
        return true;
    }
}

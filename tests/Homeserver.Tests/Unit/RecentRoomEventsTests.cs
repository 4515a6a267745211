using Homeserver.Rooms;
using Homeserver.Streams;

namespace Homeserver.Tests.Unit;

public sealed class RecentRoomEventsTests
{
    private static long _position;

    private static (StreamEntry, RoomEventRow) Event(string roomId, string eventId, string? redacts = null, string? redactedJson = null)
    {
        var position = Interlocked.Increment(ref _position);
        var row = new RoomEventRow(eventId, roomId, "m.room.message", null, "@a:x", 0, position, $"{{\"event_id\":\"{eventId}\"}}",
            Redacts: redacts, RedactedJson: redactedJson);
        return (new StreamEntry(StreamNames.Events, 0, position, RoomStreamRows.EventKind, roomId, "{}"), row);
    }

    [Fact]
    public void Serves_windows_it_holds_and_refuses_windows_it_does_not()
    {
        var recent = new RecentRoomEvents();
        var events = Enumerable.Range(0, 3).Select(i => Event("!a:x", $"$a{i}")).ToList();
        foreach (var (entry, row) in events) recent.Applied(entry, row);
        var first = events[0].Item1.Position;

        Assert.True(recent.TryGet("!a:x", first - 1, events[^1].Item1.Position, 10, out var all, out var limited));
        Assert.Equal(["$a0", "$a1", "$a2"], all.Select(e => e.EventId));
        Assert.False(limited);

        Assert.True(recent.TryGet("!a:x", first - 1, events[^1].Item1.Position, 2, out var latest, out limited));
        Assert.Equal(["$a1", "$a2"], latest.Select(e => e.EventId));
        Assert.True(limited);

        // A room with no event since the silo started has nothing in any window.
        Assert.True(recent.TryGet("!quiet:x", 0, long.MaxValue, 10, out var none, out _));
        Assert.Empty(none);
    }

    [Fact]
    public void A_redaction_rewrites_the_held_copy()
    {
        var recent = new RecentRoomEvents();
        var (e1, r1) = Event("!r:x", "$target");
        recent.Applied(e1, r1);
        var (e2, r2) = Event("!r:x", "$redaction", redacts: "$target", redactedJson: "{\"event_id\":\"$target\",\"redacted\":true}");
        recent.Applied(e2, r2);
        Assert.True(recent.TryGet("!r:x", e1.Position - 1, e2.Position, 10, out var events, out _));
        Assert.True(events[0].Redacted);
        Assert.Contains("redacted", events[0].Json);
    }

    [Fact]
    public void Dropping_quiet_rooms_to_bound_memory_never_answers_for_a_window_it_lost()
    {
        var recent = new RecentRoomEvents();
        var (oldEntry, oldRow) = Event("!old:x", "$old");
        recent.Applied(oldEntry, oldRow);
        // Enough other rooms to make it drop the quietest (the first) room.
        for (var i = 0; i < 20_001; i++)
        {
            var (entry, row) = Event($"!busy{i}:x", $"$b{i}");
            recent.Applied(entry, row);
        }
        // The dropped room's event is no longer held: a window that contains it must go to the database.
        Assert.False(recent.TryGet("!old:x", oldEntry.Position - 1, long.MaxValue, 10, out _, out _));

        // A new event in the dropped room starts a new log that knows nothing before it was made.
        var (newEntry, newRow) = Event("!old:x", "$new");
        recent.Applied(newEntry, newRow);
        Assert.False(recent.TryGet("!old:x", oldEntry.Position - 1, long.MaxValue, 10, out _, out _));
        Assert.True(recent.TryGet("!old:x", newEntry.Position - 1, long.MaxValue, 10, out var fresh, out _));
        Assert.Equal(["$new"], fresh.Select(e => e.EventId));
    }

    [Fact]
    public void Past_its_bytes_the_quietest_rooms_go_and_their_windows_go_to_the_database()
    {
        // Each event here weighs its JSON (two bytes a character) and 200 bytes; room 0 is written first, so quietest.
        var events = Enumerable.Range(0, 10).Select(i => Event($"!w{i}:x", $"$w{i}")).ToList();
        var perEvent = RecentRoomEvents.Weight(RecentRoomEvents.ToStoredEvent(events[0].Item1, events[0].Item2));
        var caches = new Homeserver.Caches.CacheRegistry(new Dictionary<string, int> { [RecentRoomEvents.Bytes] = perEvent * 8 + perEvent / 2 });
        var recent = new RecentRoomEvents(caches);
        for (var i = 0; i < 8; i++) recent.Applied(events[i].Item1, events[i].Item2);
        Assert.True(recent.TryGet("!w0:x", events[0].Item1.Position - 1, long.MaxValue, 10, out var held, out _));
        Assert.Single(held);
        Assert.Equal(8 * perEvent, caches.Status().Single(c => c.Name == RecentRoomEvents.Bytes).Count);

        // The ninth event is past the bound: the quietest rooms go until nine tenths of it are left.
        recent.Applied(events[8].Item1, events[8].Item2);
        var bytes = caches.Status().Single(c => c.Name == RecentRoomEvents.Bytes).Count;
        Assert.True(bytes <= (perEvent * 8 + perEvent / 2) * 9 / 10, $"{bytes} bytes held");
        Assert.False(recent.TryGet("!w0:x", events[0].Item1.Position - 1, long.MaxValue, 10, out _, out _));
        Assert.True(recent.TryGet("!w8:x", events[8].Item1.Position - 1, long.MaxValue, 10, out var newest, out _));
        Assert.Equal(["$w8"], newest.Select(e => e.EventId));
    }

    [Fact]
    public void Each_room_keeps_its_last_events_up_to_the_configured_count()
    {
        var recent = new RecentRoomEvents();
        var events = Enumerable.Range(0, RecentRoomEvents.DefaultPerRoom + 1).Select(i => Event("!many:x", $"$n{i}")).ToList();
        foreach (var (entry, row) in events) recent.Applied(entry, row);
        // The first event was trimmed: a window from before it is not held; one from after it is.
        Assert.False(recent.TryGet("!many:x", events[0].Item1.Position - 1, long.MaxValue, 100, out _, out _));
        Assert.True(recent.TryGet("!many:x", events[0].Item1.Position, long.MaxValue, 100, out var held, out _));
        Assert.Equal(RecentRoomEvents.DefaultPerRoom, held.Count);
    }
}

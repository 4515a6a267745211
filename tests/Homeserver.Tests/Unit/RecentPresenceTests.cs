using Homeserver.AccountData;
using Homeserver.Caches;
using Homeserver.Presence;
using Homeserver.Streams;

namespace Homeserver.Tests.Unit;

public sealed class RecentPresenceTests
{
    private static StreamEntry Row(long position, string userId, string state)
    {
        var row = UserStreamSync.Row(PresencePersister.KindName, PresenceStore.Key(userId), new PresenceRow(userId, state, null, position, state == "online"));
        return new StreamEntry(StreamNames.Presence, 0, position, row.Kind, row.Key, row.Payload);
    }

    [Fact]
    public void Answers_each_users_latest_row_in_the_window_as_the_table_would()
    {
        var recent = new RecentPresence(new CacheRegistry());
        recent.Handle(Row(10, "@a:x", "online"));
        recent.Handle(Row(11, "@b:x", "online"));
        recent.Handle(Row(12, "@a:x", "unavailable"));
        recent.Handle(Row(20, "@b:x", "offline"));

        var unknown = new List<string>();
        var changes = recent.GetChanges(["@a:x", "@b:x", "@c:x"], 9, 15, unknown);
        // @a's latest in (9, 15] is its second row; @b's in the window is its first (its next is after 15); @c never moved.
        Assert.Equal([("@b:x", "online"), ("@a:x", "unavailable")], changes.Select(c => (c.UserId, c.State)));
        Assert.Empty(unknown);

        Assert.Equal(["@b:x"], recent.GetChanges(["@a:x", "@b:x"], 12, 20, unknown).Select(c => c.UserId));
    }

    [Fact]
    public void A_window_older_than_what_it_holds_is_left_to_the_database()
    {
        var recent = new RecentPresence(new CacheRegistry());
        for (var p = 1; p <= 6; p++) recent.Handle(Row(p, "@a:x", p % 2 == 0 ? "online" : "unavailable"));
        var unknown = new List<string>();
        // It keeps a user's last 4 rows: a window starting before them is not held whole.
        Assert.Empty(recent.GetChanges(["@a:x"], 0, 6, unknown));
        Assert.Equal(["@a:x"], unknown);
        unknown.Clear();
        Assert.Equal(["online"], recent.GetChanges(["@a:x"], 3, 6, unknown).Select(c => c.State));
        Assert.Empty(unknown);
    }
}

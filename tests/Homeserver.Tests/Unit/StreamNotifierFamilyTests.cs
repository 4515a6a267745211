using Homeserver.Streams;

namespace Homeserver.Tests.Unit;

/// <summary>Long-polls that follow every member of a room through one shared key family (presence).</summary>
public sealed class StreamNotifierFamilyTests
{
    private static StreamEntry Row(string stream, long position, string key) => new(stream, 0, position, "test", key, "{}");

    private static StreamNotifier Started()
    {
        var notifier = new StreamNotifier();
        foreach (var stream in StreamNames.All) notifier.Initialise(stream, 0, 0);
        return notifier;
    }

    [Fact]
    public async Task A_member_of_the_family_wakes_the_waiter_and_its_own_key_and_strangers_do_not()
    {
        using var notifier = Started();
        var members = new HashSet<string>(StringComparer.Ordinal) { "@a:x", "@b:x", "@me:x" };
        var family = new KeyFamily(StreamNames.Presence, "presence/", members, Except: "@me:x");
        var since = notifier.Current;
        var wait = notifier.WaitForChangeAsync(since, [], TimeSpan.FromSeconds(10), families: [family]);
        Assert.Equal(1, notifier.WaiterCount);

        notifier.Advanced(StreamNames.Presence, 0, 1, [Row(StreamNames.Presence, 1, "presence/@me:x")]);
        notifier.Advanced(StreamNames.Presence, 0, 2, [Row(StreamNames.Presence, 2, "presence/@stranger:x")]);
        // The same id on another stream is not the family's.
        notifier.Advanced(StreamNames.Typing, 0, 1, [Row(StreamNames.Typing, 1, "presence/@a:x")]);
        Assert.False(wait.IsCompleted);

        notifier.Advanced(StreamNames.Presence, 0, 3, [Row(StreamNames.Presence, 3, "presence/@b:x")]);
        Assert.True(await wait.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Equal(0, notifier.WaiterCount);
    }

    [Fact]
    public void ChangedSince_sees_a_member_change_after_the_token_and_not_before()
    {
        using var notifier = Started();
        var members = new HashSet<string>(StringComparer.Ordinal) { "@a:x" };
        var family = new KeyFamily(StreamNames.Presence, "presence/", members);
        notifier.Advanced(StreamNames.Presence, 0, 1, [Row(StreamNames.Presence, 1, "presence/@a:x")]);
        var after = notifier.Current;
        notifier.Advanced(StreamNames.Presence, 0, 2, [Row(StreamNames.Presence, 2, "presence/@other:x")]);

        Assert.False(notifier.ChangedSince(after, [], families: [family]));
        Assert.True(notifier.ChangedSince(StreamToken.Zero, [], families: [family]));
        // Already changed: the wait answers at once.
        Assert.True(notifier.WaitForChangeAsync(StreamToken.Zero, [], TimeSpan.FromSeconds(1), families: [family]).IsCompletedSuccessfully);
    }

    [Fact]
    public void A_token_older_than_the_recent_rows_is_still_answered_right()
    {
        using var notifier = Started();
        var family = new KeyFamily(StreamNames.Presence, "presence/", new HashSet<string>(StringComparer.Ordinal) { "@a:x" });
        notifier.Advanced(StreamNames.Presence, 0, 1, [Row(StreamNames.Presence, 1, "presence/@a:x")]);
        var afterA = notifier.Current;
        // Push @a's change out of the recent rows with others' changes.
        for (var p = 2L; p < 6000; p++) notifier.Advanced(StreamNames.Presence, 0, p, [Row(StreamNames.Presence, p, $"presence/@u{p}:x")]);

        Assert.False(notifier.ChangedSince(afterA, [], families: [family]));
        Assert.True(notifier.ChangedSince(StreamToken.Zero, [], families: [family]));
    }

    [Fact]
    public void The_ids_changed_after_a_token_come_from_the_recent_rows_while_they_hold_them()
    {
        using var notifier = Started();
        notifier.Advanced(StreamNames.Presence, 0, 1, [Row(StreamNames.Presence, 1, "presence/@a:x")]);
        var afterA = notifier.Current;
        notifier.Advanced(StreamNames.Presence, 0, 2, [Row(StreamNames.Presence, 2, "presence/@b:x")]);
        notifier.Advanced(StreamNames.Presence, 0, 3, [Row(StreamNames.Presence, 3, "presence/@c:x")]);

        Assert.True(notifier.TryGetChangedIds(afterA, StreamNames.Presence, "presence/", out var ids));
        Assert.Equal(["@b:x", "@c:x"], ids.Order(StringComparer.Ordinal));
        Assert.True(notifier.TryGetChangedIds(notifier.Current, StreamNames.Presence, "presence/", out var none));
        Assert.Empty(none);

        for (var p = 4L; p < 6000; p++) notifier.Advanced(StreamNames.Presence, 0, p, [Row(StreamNames.Presence, p, $"presence/@u{p}:x")]);
        // The rows after the token no longer all fit: the caller must ask the database.
        Assert.False(notifier.TryGetChangedIds(afterA, StreamNames.Presence, "presence/", out _));
    }
}

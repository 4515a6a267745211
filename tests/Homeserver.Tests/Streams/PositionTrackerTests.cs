using Homeserver.Streams;

namespace Homeserver.Tests.Streams;

public sealed class PositionTrackerTests
{
    private static StreamEntry Entry(long p) => new("typing", 0, p, "k", null, "{}");

    [Fact]
    public void A_later_commit_stays_hidden_until_every_lower_position_finishes()
    {
        var t = new PositionTracker(1);
        t.Allocated([2]);
        t.Allocated([3]);
        t.Committed([Entry(3)]);
        Assert.Empty(t.Release());
        Assert.Equal(1, t.Persisted);

        t.Committed([Entry(2)]);
        Assert.Equal([2L, 3L], t.Release().Select(e => e.Position));
        Assert.Equal(3, t.Persisted);
    }

    [Fact]
    public void An_abort_releases_the_positions_behind_it()
    {
        var t = new PositionTracker(0);
        t.Allocated([1, 2]);
        t.Allocated([3]);
        t.Committed([Entry(3)]);
        t.Aborted([1, 2]);
        Assert.Equal([3L], t.Release().Select(e => e.Position));
        Assert.Equal(3, t.Persisted);
    }

    [Fact]
    public void Idle_advance_only_when_nothing_is_in_flight()
    {
        var t = new PositionTracker(5);
        t.Allocated([9]);
        Assert.False(t.AdvanceIdle(20));
        t.Committed([Entry(9)]);
        t.Release();
        Assert.True(t.AdvanceIdle(20));
        Assert.Equal(20, t.Persisted);
        Assert.Throws<InvalidOperationException>(() => t.Allocated([15]));
    }
}

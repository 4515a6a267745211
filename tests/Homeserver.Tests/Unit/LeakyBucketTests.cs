using Homeserver.RateLimits;

namespace Homeserver.Tests.Unit;

/// <summary>The bucket behaves as Synapse's Ratelimiter: burst at once, then the rate; retry_after to the next action.</summary>
public sealed class LeakyBucketTests
{
    private static readonly BucketLimit Limit = new(PerSecond: 0.5, Burst: 3);

    [Fact]
    public void A_burst_is_allowed_at_once_then_one_action_per_refill()
    {
        var bucket = new LeakyBucket();
        Assert.Equal(3, bucket.Room(Limit, 0));
        bucket.Add(Limit, 0, 3);
        Assert.Equal(0, bucket.Room(Limit, 0));
        Assert.Equal(2000, bucket.RetryAfterMs(Limit, 0));
        Assert.Equal(500, bucket.RetryAfterMs(Limit, 1.5));
        Assert.Equal(1, bucket.Room(Limit, 2));
        Assert.Equal(0, bucket.RetryAfterMs(Limit, 2));
        Assert.Equal(3, bucket.Room(Limit, 100));
        Assert.True(bucket.IsEmpty(Limit, 100));
    }

    [Fact]
    public void Recorded_actions_count_over_the_limit()
    {
        var bucket = new LeakyBucket();
        for (var i = 0; i < 5; i++) bucket.Add(Limit, 0, 1);
        Assert.Equal(0, bucket.Room(Limit, 0));
        Assert.Equal(6000, bucket.RetryAfterMs(Limit, 0)); // level 5 must drain to 2
    }

    [Fact]
    public void Time_going_backwards_does_not_refill()
    {
        var bucket = new LeakyBucket();
        bucket.Add(Limit, 10, 3);
        Assert.Equal(0, bucket.Room(Limit, 5));
    }
}

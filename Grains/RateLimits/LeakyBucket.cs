namespace Homeserver.RateLimits;

/// <summary>
/// Synapse's rate-limit bucket ("leaky bucket as a meter", synapse/api/ratelimiting.py): each action adds one to the
/// level, the level drains at <see cref="BucketLimit.PerSecond"/>, and an action is allowed while the level plus it
/// stays within <see cref="BucketLimit.Burst"/>. Pure logic: time is passed in.
/// </summary>
public sealed class LeakyBucket
{
    private double _level;
    private double _at;

    /// <summary>Room for whole actions at <paramref name="nowSeconds"/>.</summary>
    public int Room(BucketLimit limit, double nowSeconds)
    {
        Drain(limit, nowSeconds);
        // The small epsilon keeps a level of 2.9999999 from costing a whole action (Synapse compares the same way round).
        return Math.Max(0, (int)Math.Floor(limit.Burst - _level + 1e-9));
    }

    /// <summary>Adds <paramref name="actions"/> to the level, allowed or not.</summary>
    public void Add(BucketLimit limit, double nowSeconds, int actions)
    {
        Drain(limit, nowSeconds);
        _level += actions;
    }

    /// <summary>Milliseconds until one more action fits (0 when it fits now).</summary>
    public long RetryAfterMs(BucketLimit limit, double nowSeconds)
    {
        Drain(limit, nowSeconds);
        var excess = _level + 1 - limit.Burst;
        return excess <= 0 ? 0 : (long)Math.Ceiling(excess / limit.PerSecond * 1000);
    }

    /// <summary>Whether the bucket is empty, so forgetting it changes nothing.</summary>
    public bool IsEmpty(BucketLimit limit, double nowSeconds)
    {
        Drain(limit, nowSeconds);
        return _level <= 0;
    }

    private void Drain(BucketLimit limit, double nowSeconds)
    {
        if (nowSeconds > _at) _level = Math.Max(0, _level - (nowSeconds - _at) * limit.PerSecond);
        _at = Math.Max(_at, nowSeconds);
    }
}

using Orleans.Placement;

namespace Homeserver.RateLimits;

/// <summary>
/// See <see cref="IRateLimitBucketGrain"/>. Placed on the silo of the first caller: a client keeps its connection to
/// one front end, so its bucket is usually a same-silo call away (microseconds, not a network round trip).
/// </summary>
[PreferLocalPlacement]
public sealed class RateLimitBucketGrain : Grain, IRateLimitBucketGrain
{
    private readonly LeakyBucket _bucket = new();

    public Task<BucketGrant> TakeAsync(BucketLimit limit, int wanted)
    {
        var now = Now();
        var granted = Math.Min(Math.Max(1, wanted), _bucket.Room(limit, now));
        if (granted == 0) return Task.FromResult(new BucketGrant(0, _bucket.RetryAfterMs(limit, now)));
        _bucket.Add(limit, now, granted);
        return Task.FromResult(new BucketGrant(granted, 0));
    }

    public Task<BucketGrant> PeekAsync(BucketLimit limit)
    {
        var now = Now();
        return Task.FromResult(_bucket.Room(limit, now) > 0 ? new BucketGrant(1, 0) : new BucketGrant(0, _bucket.RetryAfterMs(limit, now)));
    }

    public Task RecordAsync(BucketLimit limit)
    {
        _bucket.Add(limit, Now(), 1);
        return Task.CompletedTask;
    }

    private static double Now() => System.Diagnostics.Stopwatch.GetTimestamp() / (double)System.Diagnostics.Stopwatch.Frequency;
}

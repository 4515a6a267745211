using System.Collections.Concurrent;
using Homeserver.RateLimits;

namespace Homeserver.Api.RateLimiting;

/// <summary>
/// This process's share of the cluster's rate-limit buckets. The bucket of a (limit, partition) is one grain
/// (<see cref="IRateLimitBucketGrain"/>) for the whole cluster; a front end takes actions from it in leases of
/// <see cref="LeaseSize"/> (a tenth of the burst, at least one) and spends them locally, so it asks the grain once
/// per lease rather than once per request. Taken actions are counted in the grain when leased, so through N front ends
/// a user never gets more than the bucket allows in the long run, and in any window at most N·(lease − 1) more (actions
/// leased just before the window and spent in it); a lease unspent after <see cref="LeaseLifetime"/> is dropped, which
/// costs its user at most that many actions. With a lease of one (the defaults' message limit, burst 10) every action
/// is a grain call: the grain is placed where it was first called from, normally the silo of its user's front end, so
/// that call stays in the process.
/// </summary>
public sealed class RateLimitLeases(IGrainFactory grains)
{
    public static readonly TimeSpan LeaseLifetime = TimeSpan.FromSeconds(1);

    /// <summary>Actions taken from the cluster's bucket at a time.</summary>
    public static int LeaseSize(BucketLimit limit) => Math.Max(1, limit.Burst / 10);

    private sealed class Lease
    {
        public int Remaining;
        public long ExpiresAt;
    }

    private readonly ConcurrentDictionary<string, Lease> _leases = new(StringComparer.Ordinal);
    private int _added;

    /// <summary>Takes one action: from this process's lease when it has one, else from the cluster's bucket.</summary>
    public async ValueTask<BucketGrant> TakeAsync(string bucket, BucketLimit limit)
    {
        var size = LeaseSize(limit);
        if (size > 1 && _leases.TryGetValue(bucket, out var held))
            lock (held)
                if (held.Remaining > 0 && Environment.TickCount64 < held.ExpiresAt)
                {
                    held.Remaining--;
                    return new BucketGrant(1, 0);
                }
        var grant = await grains.GetGrain<IRateLimitBucketGrain>(bucket).TakeAsync(limit, size);
        if (grant.Granted > 1) Keep(bucket, grant.Granted - 1);
        return grant.Granted > 0 ? new BucketGrant(1, 0) : grant;
    }

    private void Keep(string bucket, int remaining)
    {
        var lease = _leases.GetOrAdd(bucket, _ => new Lease());
        // A concurrent request's lease is replaced, not added to: the replaced actions are lost to their user, never
        // given twice.
        lock (lease) (lease.Remaining, lease.ExpiresAt) = (remaining, Environment.TickCount64 + (long)LeaseLifetime.TotalMilliseconds);
        if ((Interlocked.Increment(ref _added) & 1023) == 0) DropExpired();
    }

    private void DropExpired()
    {
        var now = Environment.TickCount64;
        foreach (var (key, lease) in _leases)
            if (Volatile.Read(ref lease.ExpiresAt) <= now) _leases.TryRemove(key, out _);
    }
}

namespace Homeserver.RateLimits;

/// <summary>A limit as a bucket sees it: up to <see cref="Burst"/> actions at once, refilled at <see cref="PerSecond"/>.
/// Travels with every call, so a bucket follows the caller's configuration and needs none of its own.</summary>
[GenerateSerializer, Immutable]
public readonly record struct BucketLimit([property: Id(0)] double PerSecond, [property: Id(1)] int Burst);

/// <summary>What a bucket granted: <see cref="Granted"/> actions (0 when refused), and when refused how long until one
/// would be allowed.</summary>
[GenerateSerializer, Immutable]
public readonly record struct BucketGrant([property: Id(0)] int Granted, [property: Id(1)] long RetryAfterMs);

/// <summary>
/// The cluster's one bucket of a rate limit for one partition: key <c>"{limit}/{partition}"</c>, e.g.
/// <c>"message/@alice:example.org"</c> or <c>"login_address/192.0.2.7"</c>. Front ends take actions from it in small
/// leases (see <c>RateLimitLeases</c> in the API), so the limit holds across every front end. Kept in memory only: a
/// bucket lost with its silo starts again empty, which errs towards letting requests through.
/// </summary>
public interface IRateLimitBucketGrain : IGrainWithStringKey
{
    /// <summary>Takes up to <paramref name="wanted"/> actions, as many as the bucket has room for (at least one, or none).</summary>
    Task<BucketGrant> TakeAsync(BucketLimit limit, int wanted);

    /// <summary>Whether one more action would be allowed now, without taking it (Synapse's <c>update=False</c>).</summary>
    Task<BucketGrant> PeekAsync(BucketLimit limit);

    /// <summary>Counts one action that happened, even over the limit (Synapse's <c>record_action</c>): registrations and
    /// failed logins are counted once their outcome is known.</summary>
    Task RecordAsync(BucketLimit limit);
}

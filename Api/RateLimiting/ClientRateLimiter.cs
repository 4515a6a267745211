using System.Threading.RateLimiting;
using Homeserver.Accounts;
using Homeserver.Api.Http;
using Microsoft.AspNetCore.RateLimiting;

namespace Homeserver.Api.RateLimiting;

/// <summary>
/// ASP.NET Core's rate limiter over the cluster's buckets: the global limiter of <c>UseRateLimiter</c>, taking one
/// action of the <see cref="ClientRateLimit"/> an endpoint names in its metadata (none: nothing to do). Per user, the
/// requester is found through the access-token cache the handler uses next (no extra lookup on the send path); an
/// unknown token passes, for the handler to answer 401. A refused server admin passes too: Synapse lets an operator
/// exempt a user (its <c>ratelimit_override</c>), and here being a server admin is that exemption; it is looked up
/// only when a request would be refused. Application services, which Synapse exempts, do not exist here yet.
/// </summary>
public sealed class ClientRateLimiter(ClientRateLimits limits, IAccessTokenAuthenticator authenticator) : PartitionedRateLimiter<HttpContext>
{
    private static readonly RateLimitLease Passed = new Decision(true, 0);
    private static readonly RateLimitLease Undecided = new Decision(false, 0);

    public override RateLimiterStatistics? GetStatistics(HttpContext resource) => null;

    // Called first by the middleware: a request with no limit passes at once; one with a limit goes on to the
    // asynchronous acquire (a refused attempt with no reason is the middleware's cue for that).
    protected override RateLimitLease AttemptAcquireCore(HttpContext context, int permitCount) =>
        LimitOf(context) is null ? Passed : Undecided;

    protected override async ValueTask<RateLimitLease> AcquireAsyncCore(HttpContext context, int permitCount, CancellationToken cancellationToken)
    {
        if (LimitOf(context) is not { } limit) return Passed;
        string partition;
        if (limit.Partition == LimitedBy.Address) partition = ClientRateLimit.Address(context);
        else if (RequestAuth.AccessToken(context.Request) is { } token && await authenticator.AuthenticateAsync(token) is { } requester)
            partition = requester.UserId;
        else return Passed;

        var grant = await limits.TryTakeAsync(limit, partition);
        if (grant.Granted > 0) return Passed;
        if (limit.Partition == LimitedBy.User && await RequestAuth.IsAdminAsync(context, partition)) return Passed;
        return new Decision(false, grant.RetryAfterMs);
    }

    private ClientRateLimit? LimitOf(HttpContext context) =>
        limits.Enabled ? context.GetEndpoint()?.Metadata.GetMetadata<ClientRateLimit>() : null;

    /// <summary>Answers a refused request through the one error path (MatrixErrorMiddleware), as every other error.</summary>
    public static ValueTask OnRejected(OnRejectedContext rejected, CancellationToken _) =>
        throw ClientRateLimits.Exceeded(rejected.Lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? (long)after.TotalMilliseconds : 0);

    private sealed class Decision(bool acquired, long retryAfterMs) : RateLimitLease
    {
        public override bool IsAcquired => acquired;

        public override IEnumerable<string> MetadataNames => acquired ? [] : [MetadataName.RetryAfter.Name];

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            metadata = !acquired && metadataName == MetadataName.RetryAfter.Name ? TimeSpan.FromMilliseconds(retryAfterMs) : null;
            return metadata is not null;
        }
    }
}

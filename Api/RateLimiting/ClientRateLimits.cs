using System.Globalization;
using System.Text.Json;
using Homeserver.Errors;
using Homeserver.RateLimits;
using Microsoft.Extensions.Options;

namespace Homeserver.Api.RateLimiting;

/// <summary>
/// The rate limits as handlers take them (the endpoint-metadata limits go through <see cref="ClientRateLimiter"/>,
/// which uses this too). Everything is a no-op when <c>Homeserver:RateLimits:Enabled</c> is off or the limit is zero.
/// </summary>
public sealed class ClientRateLimits(RateLimitLeases leases, IGrainFactory grains, IOptions<HomeserverOptions> options)
{
    public bool Enabled => options.Value.RateLimits.Enabled;

    /// <summary>Takes one action of <paramref name="limit"/> for <paramref name="partition"/>; a refusal is the grant
    /// with <c>Granted == 0</c>.</summary>
    public ValueTask<BucketGrant> TryTakeAsync(ClientRateLimit limit, string partition)
    {
        if (!Enabled || limit.Limit(options.Value.RateLimits) is not { } bucket) return ValueTask.FromResult(new BucketGrant(1, 0));
        return leases.TakeAsync(Bucket(limit, partition), bucket);
    }

    /// <summary>Takes one action, or 429 <c>M_LIMIT_EXCEEDED</c>.</summary>
    public async ValueTask TakeAsync(ClientRateLimit limit, string partition)
    {
        var grant = await TryTakeAsync(limit, partition);
        if (grant.Granted == 0) throw Exceeded(grant.RetryAfterMs);
    }

    /// <summary>429 <c>M_LIMIT_EXCEEDED</c> if one more action would exceed the limit; takes nothing (the action is
    /// counted by <see cref="RecordAsync"/> once its outcome is known). Asks the cluster's bucket directly: these are
    /// logins and registrations, where a grain call is nothing beside the password hash.</summary>
    public async ValueTask CheckAsync(ClientRateLimit limit, string partition)
    {
        if (!Enabled || limit.Limit(options.Value.RateLimits) is not { } bucket) return;
        var grant = await grains.GetGrain<IRateLimitBucketGrain>(Bucket(limit, partition)).PeekAsync(bucket);
        if (grant.Granted == 0) throw Exceeded(grant.RetryAfterMs);
    }

    /// <summary>Counts one action that happened (a registration, a failed login), allowed or not.</summary>
    public async ValueTask RecordAsync(ClientRateLimit limit, string partition)
    {
        if (!Enabled || limit.Limit(options.Value.RateLimits) is not { } bucket) return;
        await grains.GetGrain<IRateLimitBucketGrain>(Bucket(limit, partition)).RecordAsync(bucket);
    }

    private static string Bucket(ClientRateLimit limit, string partition) => $"{limit.Name}/{partition}";

    /// <summary>The error of an exceeded limit, as the spec has it: 429 <c>M_LIMIT_EXCEEDED</c> with
    /// <c>retry_after_ms</c> (MatrixErrorMiddleware adds the matching <c>Retry-After</c> header).</summary>
    public static MatrixException Exceeded(long retryAfterMs) =>
        new(ErrorCodes.LimitExceeded, "Too many requests", 429,
            $$"""{"retry_after_ms":{{Math.Max(0, retryAfterMs).ToString(CultureInfo.InvariantCulture)}}}""");

    /// <summary>Whole seconds for the <c>Retry-After</c> header of a 429 made by <see cref="Exceeded"/>.</summary>
    public static int? RetryAfterSeconds(MatrixException e)
    {
        if (e.Status != 429 || e.ExtraJson is null) return null;
        using var body = JsonDocument.Parse(e.ExtraJson);
        return body.RootElement.TryGetProperty("retry_after_ms", out var ms) && ms.TryGetInt64(out var value)
            ? (int)Math.Min(int.MaxValue, (value + 999) / 1000)
            : null;
    }
}

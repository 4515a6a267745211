using System.Net;
using Homeserver.RateLimits;

namespace Homeserver.Api.RateLimiting;

/// <summary>Whose actions a limit counts: the authenticated user's, or the client address's (before anyone is
/// authenticated: login and registration).</summary>
public enum LimitedBy { User, Address }

/// <summary>
/// One of the Client-Server API's rate limits (Synapse's <c>rc_*</c>): its bucket name, its configuration and what it
/// is counted per. As endpoint metadata (<c>.WithMetadata(ClientRateLimit.Message)</c>) it is enforced by ASP.NET
/// Core's rate limiter before the handler runs, one action per request; limits that depend on the outcome or the
/// body (registration, failed logins, an invite's recipient) are taken by the handler through <see cref="ClientRateLimits"/>.
/// </summary>
public sealed class ClientRateLimit(string name, LimitedBy partition, Func<RateLimitOptions, RateLimit> select)
{
    public string Name { get; } = name;
    public LimitedBy Partition { get; } = partition;

    /// <summary>The configured limit, or null when it is off (a zero rate or burst).</summary>
    public BucketLimit? Limit(RateLimitOptions options)
    {
        var limit = select(options);
        return limit.PerSecond > 0 && limit.Burst > 0 ? new BucketLimit(limit.PerSecond, limit.Burst) : null;
    }

    public static readonly ClientRateLimit Message = new("message", LimitedBy.User, o => o.Message);
    public static readonly ClientRateLimit Joins = new("joins", LimitedBy.User, o => o.Joins);
    public static readonly ClientRateLimit InvitesPerIssuer = new("invites_per_issuer", LimitedBy.User, o => o.InvitesPerIssuer);
    public static readonly ClientRateLimit InvitesPerRoom = new("invites_per_room", LimitedBy.User, o => o.InvitesPerRoom);
    public static readonly ClientRateLimit InvitesPerUser = new("invites_per_user", LimitedBy.User, o => o.InvitesPerUser);
    public static readonly ClientRateLimit MediaCreate = new("media_create", LimitedBy.User, o => o.MediaCreate);
    public static readonly ClientRateLimit LoginAddress = new("login_address", LimitedBy.Address, o => o.LoginAddress);
    public static readonly ClientRateLimit LoginAccount = new("login_account", LimitedBy.User, o => o.LoginAccount);
    public static readonly ClientRateLimit LoginFailedAttempts = new("login_failed", LimitedBy.User, o => o.LoginFailedAttempts);
    public static readonly ClientRateLimit Registration = new("registration", LimitedBy.Address, o => o.Registration);

    /// <summary>The client's address as a partition: the connection's own (no forwarded header is trusted, as for
    /// client IPs), IPv4 written as IPv4 even on a dual-stack socket.</summary>
    public static string Address(HttpContext context)
    {
        var ip = context.Connection.RemoteIpAddress;
        if (ip is null) return "unknown";
        return (ip.IsIPv4MappedToIPv6 ? ip.MapToIPv4() : ip).ToString();
    }

    public override string ToString() => Name;
}

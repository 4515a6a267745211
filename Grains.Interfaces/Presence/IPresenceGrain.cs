namespace Homeserver.Presence;

/// <summary>
/// One user's presence. Key: the user id. Changes are appended to the <c>presence</c> stream keyed by the user (with
/// the stored row in the same transaction); an online user who shows no activity for the configured idle time becomes
/// <c>unavailable</c>, and a user none of whose clients has synced for a while (their long-poll's timeout plus the
/// configured sync timeout) becomes <c>offline</c>; both are appended like any other change. Methods return the <c>presence/0</c> position to wait
/// for (0 when nothing visible changed).
/// </summary>
public interface IPresenceGrain : IGrainWithStringKey
{
    /// <summary>An explicit <c>PUT /presence/.../status</c>: sets the state and replaces the status message.</summary>
    [Idempotent]
    Task<long> SetAsync(string presence, string? statusMsg);

    /// <summary>A /sync of the user (<c>set_presence</c>, default online) whose client asked to wait up to
    /// <paramref name="longPoll"/>: activity that keeps or makes them online; leaves the status message alone.</summary>
    [Idempotent]
    Task<long> SyncedAsync(string presence, TimeSpan longPoll);

    /// <summary>Does nothing but make sure the grain is active, so that its timers take a user who is no longer
    /// syncing offline (after the silo that had the grain went away).</summary>
    Task WatchAsync();
}

using Orleans.Concurrency;

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

    /// <summary>The user's presence as of now, <c>last_active</c> included (which moves in memory without a stream row
    /// while the user stays currently active).</summary>
    [AlwaysInterleave]
    Task<PresenceRow> GetAsync();

    /// <summary>Does nothing but make sure the grain is active, so that its timers take a user who is no longer
    /// syncing offline (after the silo that had the grain went away).</summary>
    Task WatchAsync();
}

/// <summary>The stream row and the stored state: one user's presence after a change.</summary>
[GenerateSerializer, Immutable]
public sealed record PresenceRow(
    [property: Id(0)] string UserId,
    [property: Id(1)] string State,
    [property: Id(2)] string? StatusMsg,
    [property: Id(3)] long LastActiveTs,
    [property: Id(4)] bool CurrentlyActive);

namespace Homeserver.Keys;

/// <summary>
/// One user's server-side key backup (spec: "Server-side key backups"): versions, each with an algorithm and its
/// <c>auth_data</c>, and the room keys backed up under each. Key: the full user id. Only the newest version that was
/// not deleted takes keys; every change of a version's keys moves its etag. JSON crosses as text.
/// </summary>
public interface IKeyBackupGrain : IGrainWithStringKey
{
    /// <summary>A new version (the newest from now on); returns its id.</summary>
    Task<string> CreateVersionAsync(string algorithm, string authDataJson);

    /// <summary>The version (the newest when null), or null when there is none (deleted ones are gone).</summary>
    [Idempotent]
    Task<BackupVersionInfo?> GetVersionAsync(string? version);

    /// <summary>Replaces a version's <c>auth_data</c>. 404 for an unknown version, 400 <c>M_INVALID_PARAM</c> for another algorithm.</summary>
    Task UpdateVersionAsync(string version, string algorithm, string authDataJson);

    /// <summary>Deletes a version and its keys. 404 for an unknown version.</summary>
    Task DeleteVersionAsync(string version);

    /// <summary>Stores keys into the newest version, each replacing the one held only when it is better (verified
    /// over unverified, then the lower first message index, then the fewer forwards). 403
    /// <c>M_WRONG_ROOM_KEYS_VERSION</c> when <paramref name="version"/> is not the newest.</summary>
    Task<BackupKeysResult> PutKeysAsync(string version, BackupKey[] keys);

    /// <summary>The version's keys, all of them or one room's or one session's. 404 for an unknown version.</summary>
    [Idempotent]
    Task<BackupKey[]> GetKeysAsync(string version, string? roomId, string? sessionId);

    /// <summary>Deletes the version's keys, all of them or one room's or one session's.</summary>
    Task<BackupKeysResult> DeleteKeysAsync(string version, string? roomId, string? sessionId);
}

[GenerateSerializer, Immutable]
public sealed record BackupVersionInfo(
    [property: Id(0)] string Version,
    [property: Id(1)] string Algorithm,
    [property: Id(2)] string AuthDataJson,
    [property: Id(3)] long Count,
    [property: Id(4)] string Etag);

[GenerateSerializer, Immutable]
public sealed record BackupKey(
    [property: Id(0)] string RoomId,
    [property: Id(1)] string SessionId,
    [property: Id(2)] long FirstMessageIndex,
    [property: Id(3)] long ForwardedCount,
    [property: Id(4)] bool IsVerified,
    [property: Id(5)] string SessionDataJson);

[GenerateSerializer, Immutable]
public sealed record BackupKeysResult([property: Id(0)] long Count, [property: Id(1)] string Etag);

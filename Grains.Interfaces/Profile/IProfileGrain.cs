using Homeserver.Rooms;

namespace Homeserver.Profile;

/// <summary>
/// One user's profile (display name and avatar). Key: the full user id. A change is stored through the <c>caches</c>
/// stream (so every silo's profile cache drops the old one) and then sent as a new <c>m.room.member</c> join event to
/// every room the user has joined.
/// </summary>
public interface IProfileGrain : IGrainWithStringKey
{
    /// <summary>404 <c>M_NOT_FOUND</c> when the user does not exist.</summary>
    Task<ProfileUpdateResult> SetAsync(ProfileUpdate update);
}

/// <summary>Which fields to change; a null value removes the field.</summary>
[GenerateSerializer, Immutable]
public sealed record ProfileUpdate(
    [property: Id(0)] bool SetDisplayName,
    [property: Id(1)] string? DisplayName,
    [property: Id(2)] bool SetAvatarUrl,
    [property: Id(3)] string? AvatarUrl);

/// <summary>The <c>caches/0</c> position of the profile change and the room events that announced it (to wait for).</summary>
[GenerateSerializer, Immutable]
public sealed record ProfileUpdateResult(
    [property: Id(0)] long CachesPosition,
    [property: Id(1)] RoomWriteResult[] RoomWrites);

using Homeserver.Errors;

namespace Homeserver.Matrix;

/// <summary>
/// The room versions this server understands and the few per-version switches the pure logic needs. Versions are
/// compared by number because each version is defined as "the previous one plus changes".
/// </summary>
public static class RoomVersions
{
    /// <summary>The version of rooms we create unless asked otherwise.</summary>
    public const string Default = "10";

    public static readonly IReadOnlyList<string> Known = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"];

    public static bool IsKnown(string? version) => version is not null && Known.Contains(version);

    /// <summary>The numeric version, or throws <c>M_UNSUPPORTED_ROOM_VERSION</c> for one we do not implement.</summary>
    public static int Number(string version) =>
        IsKnown(version)
            ? int.Parse(version, System.Globalization.CultureInfo.InvariantCulture)
            : throw new MatrixException(ErrorCodes.UnsupportedRoomVersion, $"Unsupported room version '{Quote.Short(version)}'");

    /// <summary>v10+: power levels must be JSON integers; earlier versions also accept strings of integers.</summary>
    public static bool IntegerPowerLevels(string version) => Number(version) >= 10;

    /// <summary>v11+: the creator is the create event's sender and <c>content.creator</c> is gone.</summary>
    public static bool ImplicitRoomCreator(string version) => Number(version) >= 11;

    /// <summary>v7+: the <c>knock</c> join rule and membership.</summary>
    public static bool Knocking(string version) => Number(version) >= 7;

    /// <summary>v8+: the <c>restricted</c> join rule.</summary>
    public static bool RestrictedJoinRule(string version) => Number(version) >= 8;

    /// <summary>v10+: the <c>knock_restricted</c> join rule.</summary>
    public static bool KnockRestrictedJoinRule(string version) => Number(version) >= 10;
}

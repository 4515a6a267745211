using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Homeserver.Errors;

namespace Homeserver.Matrix;

/// <summary>
/// A parsed <c>m.room.power_levels</c> content with the spec's defaults filled in. Built once per state and read
/// many times by the auth rules, so all values are resolved up front.
/// </summary>
public sealed class PowerLevels
{
    /// <summary>The named levels with their spec defaults (also the auth rules' list of "levels to check").</summary>
    public static readonly IReadOnlyDictionary<string, long> NamedLevelDefaults = new Dictionary<string, long>
    {
        ["users_default"] = 0,
        ["events_default"] = 0,
        ["state_default"] = 50,
        ["ban"] = 50,
        ["kick"] = 50,
        ["redact"] = 50,
        ["invite"] = 0,
    };

    private readonly Dictionary<string, long> _users;
    private readonly Dictionary<string, long> _events;
    private readonly Dictionary<string, long> _notifications;
    private readonly string? _creator;

    /// <param name="content">The content of the room's power levels event, or null when the room has none.</param>
    /// <param name="creatorUserId">The room creator: with no power levels event they alone have level 100.</param>
    /// <param name="roomVersion">Decides whether strings of integers are accepted (before v10) or rejected.</param>
    public PowerLevels(JsonObject? content, string? creatorUserId, string roomVersion = RoomVersions.Default)
    {
        Exists = content is not null;
        _creator = creatorUserId;
        var strict = RoomVersions.IntegerPowerLevels(roomVersion);
        content ??= new JsonObject();

        // With no power levels event the spec's defaults still apply (state_default is 50, as in Synapse and
        // current spec text: a room without power levels lets only its creator send state).
        UsersDefault = ReadNamed(content, "users_default", strict);
        EventsDefault = ReadNamed(content, "events_default", strict);
        StateDefault = ReadNamed(content, "state_default", strict);
        Ban = ReadNamed(content, "ban", strict);
        Kick = ReadNamed(content, "kick", strict);
        Redact = ReadNamed(content, "redact", strict);
        Invite = ReadNamed(content, "invite", strict);
        _users = ReadMap(content, "users", strict);
        _events = ReadMap(content, "events", strict);
        _notifications = ReadMap(content, "notifications", strict);
    }

    /// <summary>False when built from no event (the creator-100 defaults are in force).</summary>
    public bool Exists { get; }

    public long UsersDefault { get; }
    public long EventsDefault { get; }
    public long StateDefault { get; }
    public long Ban { get; }
    public long Kick { get; }
    public long Redact { get; }
    public long Invite { get; }

    public IReadOnlyDictionary<string, long> Users => _users;
    public IReadOnlyDictionary<string, long> Events => _events;
    public IReadOnlyDictionary<string, long> Notifications => _notifications;

    public long GetUserLevel(string userId)
    {
        if (!Exists) return userId == _creator ? 100 : 0;
        return _users.TryGetValue(userId, out var level) ? level : UsersDefault;
    }

    /// <summary>The level needed to send an event of this type (the auth rules' "required power level").</summary>
    public long GetEventLevel(string eventType, bool isState) =>
        _events.TryGetValue(eventType, out var level) ? level : isState ? StateDefault : EventsDefault;

    /// <summary>The level needed to trigger a notification kind such as <c>room</c> (<c>@room</c>); 50 by default.</summary>
    public long GetNotificationLevel(string key) => _notifications.TryGetValue(key, out var level) ? level : 50;

    /// <summary>The value of a named level by its content key (<c>ban</c>, <c>kick</c>, ... see <see cref="NamedLevelDefaults"/>).</summary>
    public long GetNamedLevel(string name) => name switch
    {
        "users_default" => UsersDefault,
        "events_default" => EventsDefault,
        "state_default" => StateDefault,
        "ban" => Ban,
        "kick" => Kick,
        "redact" => Redact,
        "invite" => Invite,
        _ => throw new ArgumentException($"Unknown power level name '{name}'", nameof(name)),
    };

    /// <summary>
    /// Reads one power level value. v10+ accepts only JSON integers; older rooms also carry strings of integers, and
    /// (v1 "floaty" levels) fractional numbers which Synapse truncates. Returns false for anything else.
    /// </summary>
    public static bool TryReadLevel(JsonNode? node, bool strict, out long level)
    {
        level = 0;
        if (node is not JsonValue v) return false;
        switch (v.GetValueKind())
        {
            case JsonValueKind.Number:
                if (v.TryGetValue<long>(out level)) return InRange(level);
                if (v.TryGetValue<int>(out var i)) { level = i; return true; }
                if (strict) return false;
                if (!double.TryParse(v.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d)
                    || double.IsNaN(d) || double.IsInfinity(d)) return false;
                level = (long)Math.Truncate(Math.Clamp(d, CanonicalJson.MinSafeInteger, CanonicalJson.MaxSafeInteger));
                return true;
            case JsonValueKind.String when !strict:
                return v.TryGetValue<string>(out var s)
                       && long.TryParse(s.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out level)
                       && InRange(level);
            default:
                return false;
        }
    }

    private static bool InRange(long l) => l is >= CanonicalJson.MinSafeInteger and <= CanonicalJson.MaxSafeInteger;

    private static long ReadNamed(JsonObject content, string name, bool strict)
    {
        if (!content.TryGetPropertyValue(name, out var node) || node is null) return NamedLevelDefaults[name];
        return TryReadLevel(node, strict, out var level)
            ? level
            : throw MatrixException.BadJson($"Power level '{name}' must be an integer");
    }

    private static Dictionary<string, long> ReadMap(JsonObject content, string name, bool strict)
    {
        var map = new Dictionary<string, long>(StringComparer.Ordinal);
        if (!content.TryGetPropertyValue(name, out var node) || node is null) return map;
        if (node is not JsonObject obj) throw MatrixException.BadJson($"Power levels '{name}' must be an object");
        foreach (var (key, value) in obj)
        {
            if (!TryReadLevel(value, strict, out var level))
                throw MatrixException.BadJson($"Power level '{name}.{key}' must be an integer");
            map[key] = level;
        }
        return map;
    }
}

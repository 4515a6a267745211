namespace Homeserver.Matrix;

/// <summary>
/// One string instance for the values that repeat across the events a silo holds. A room's current state repeats its
/// room id in every event, the type "m.room.member" in nearly all of them, and the same few hundred user ids as state
/// keys and senders across rooms; read from the database or a stream row, each is a new string of 50-100 bytes, about
/// 200 bytes an event beside its JSON (18 MB for the 91,500 state events of 300 rooms of 300 members).
/// </summary>
public static class EventStrings
{
    /// <summary>The spec's event types as literals (one instance each, interned by the runtime); others as given.</summary>
    public static string Type(string type) => type switch
    {
        "m.room.member" => "m.room.member",
        "m.room.message" => "m.room.message",
        "m.room.create" => "m.room.create",
        "m.room.power_levels" => "m.room.power_levels",
        "m.room.join_rules" => "m.room.join_rules",
        "m.room.history_visibility" => "m.room.history_visibility",
        "m.room.guest_access" => "m.room.guest_access",
        "m.room.name" => "m.room.name",
        "m.room.topic" => "m.room.topic",
        "m.room.avatar" => "m.room.avatar",
        "m.room.canonical_alias" => "m.room.canonical_alias",
        "m.room.encryption" => "m.room.encryption",
        "m.room.encrypted" => "m.room.encrypted",
        "m.room.redaction" => "m.room.redaction",
        "m.room.server_acl" => "m.room.server_acl",
        "m.room.pinned_events" => "m.room.pinned_events",
        "m.room.tombstone" => "m.room.tombstone",
        "m.reaction" => "m.reaction",
        "m.space.child" => "m.space.child",
        "m.space.parent" => "m.space.parent",
        _ => type,
    };

    /// <summary>The spec's memberships as literals; others as given.</summary>
    public static string Membership(string membership) => membership switch
    {
        "join" => "join",
        "invite" => "invite",
        "leave" => "leave",
        "ban" => "ban",
        "knock" => "knock",
        _ => membership,
    };

    /// <summary>Shares equal strings among the values of one batch (a query's rows): room ids, user ids.</summary>
    public sealed class Pool
    {
        private readonly Dictionary<string, string> _strings = new(StringComparer.Ordinal);

        public string Share(string value)
        {
            if (_strings.TryGetValue(value, out var shared)) return shared;
            // Bounded by the batch: a pool lives as long as the read it serves.
            _strings[value] = value;
            return value;
        }

        public string? ShareOrNull(string? value) => value is null ? null : Share(value);
    }
}

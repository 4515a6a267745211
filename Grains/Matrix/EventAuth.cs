using System.Text.Json.Nodes;
using Homeserver.Errors;

namespace Homeserver.Matrix;

/// <summary>
/// The event authorization rules of room version 10 (spec "Room version 10" → "Authorization rules"; the v8 rules plus
/// knock_restricted and integer-only power levels). Rule numbers in comments refer to that list. Also handles the
/// small v11 differences (creator is the create event's sender) and the join rules earlier versions lack.
/// </summary>
/// <remarks>
/// The state passed in plays the role of the event's auth events: the current state before the event. Signature
/// checks (rule 4.2.1, third-party invite signatures) are not pure logic and happen elsewhere; third-party invites
/// are therefore rejected here.
/// </remarks>
public static class EventAuth
{
    /// <summary>Throws <c>M_FORBIDDEN</c> (403) with the reason when <paramref name="ev"/> is not allowed by the rules.</summary>
    public static void Check(JsonObject ev, RoomState stateBefore)
    {
        var type = RequireString(ev, "type");
        var sender = RequireString(ev, "sender");
        var roomId = RequireString(ev, "room_id");
        if (!Identifiers.IsValidUserId(sender)) throw Forbidden($"Invalid sender '{Quote.Short(sender)}'");
        if (ev["content"] is not JsonObject content) throw Forbidden("Event content must be an object");
        var stateKey = ev.ContainsKey("state_key") ? RequireString(ev, "state_key") : null;

        // 1. The create event stands alone.
        if (type == "m.room.create")
        {
            CheckCreate(ev, content, sender, roomId);
            return;
        }

        // 2.4. Everything else needs a create event among its auth events.
        var create = stateBefore.CreateEvent ?? throw Forbidden("No m.room.create event in the room state");
        var roomVersion = stateBefore.RoomVersion;
        if (!RoomVersions.IsKnown(roomVersion)) throw Forbidden($"Unknown room version '{Quote.Short(roomVersion)}'");

        // 3. A non-federating room admits only the creating server's users.
        if (create["content"] is JsonObject createContent && createContent["m.federate"] is JsonValue fed
            && fed.TryGetValue<bool>(out var federate) && !federate
            && Identifiers.ServerNameOf(sender) != Identifiers.ServerNameOf(RoomState.GetString(create, "sender")))
            throw Forbidden("This room does not federate");

        var powerLevels = stateBefore.PowerLevels;

        // 4. Membership changes have their own rules.
        if (type == "m.room.member")
        {
            CheckMembership(ev, content, sender, stateKey, stateBefore, roomVersion);
            return;
        }

        // 5. Everyone else must be joined.
        if (stateBefore.Membership(sender) != "join") throw Forbidden($"{sender} is not joined to the room");

        var senderLevel = powerLevels.GetUserLevel(sender);

        // 6. Third-party invite events need only the invite level.
        if (type == "m.room.third_party_invite")
        {
            if (senderLevel < powerLevels.Invite) throw Forbidden("You don't have permission to invite users");
            return;
        }

        // 7. The event type's required level.
        var required = powerLevels.GetEventLevel(type, stateKey is not null);
        if (senderLevel < required)
            throw Forbidden($"You don't have permission to send {type} (level {senderLevel} < {required})");

        // 8. State keyed by a user id belongs to that user.
        if (stateKey is not null && stateKey.StartsWith('@') && stateKey != sender)
            throw Forbidden("You are not allowed to set the state of another user");

        // 9. Power level changes.
        if (type == "m.room.power_levels")
            CheckPowerLevels(content, sender, stateBefore, roomVersion);

        // 10. Otherwise allow. (Redactions included: the redact level is checked where redactions are applied.)
    }

    /// <summary>
    /// Whether the sender of <paramref name="redactionEvent"/> may redact <paramref name="target"/> at the client API:
    /// their own events always, anyone's with the redact level. (Auth rules accept every redaction from v3 on; this is
    /// the check that decides whether to apply it.)
    /// </summary>
    public static bool CanRedact(JsonObject redactionEvent, JsonObject target, RoomState state)
    {
        var sender = RoomState.GetString(redactionEvent, "sender");
        if (sender is null) return false;
        if (RoomState.GetString(redactionEvent, "room_id") is { } room && RoomState.GetString(target, "room_id") is { } targetRoom
            && room != targetRoom) return false;
        if (RoomState.GetString(target, "sender") == sender) return true;
        return state.PowerLevels.GetUserLevel(sender) >= state.PowerLevels.Redact;
    }

    /// <summary>
    /// The server-side rule for applying a received redaction (v3+ "Handling redactions"): the redact level, or the
    /// same server as the target's sender (that server vouches for its own users).
    /// </summary>
    public static bool ShouldApplyRedaction(JsonObject redactionEvent, JsonObject target, RoomState state)
    {
        var sender = RoomState.GetString(redactionEvent, "sender");
        if (sender is null) return false;
        if (state.PowerLevels.GetUserLevel(sender) >= state.PowerLevels.Redact) return true;
        var targetServer = Identifiers.ServerNameOf(RoomState.GetString(target, "sender"));
        return targetServer is not null && targetServer == Identifiers.ServerNameOf(sender);
    }

    private static void CheckCreate(JsonObject ev, JsonObject content, string sender, string roomId)
    {
        // 1.1
        if (ev["prev_events"] is JsonArray { Count: > 0 }) throw Forbidden("The create event must not have prev_events");
        // 1.2
        var senderServer = Identifiers.ServerNameOf(sender);
        if (senderServer is null || senderServer != Identifiers.ServerNameOf(roomId))
            throw Forbidden("The room id's server does not match the sender's");
        // 1.3: absent means version 1.
        var version = content.ContainsKey("room_version") ? RoomState.GetString(content, "room_version") : "1";
        if (!RoomVersions.IsKnown(version)) throw Forbidden($"Unknown room version '{Quote.Short(version)}'");
        // 1.4: only until v11 made the sender the creator.
        if (!RoomVersions.ImplicitRoomCreator(version!) && !content.ContainsKey("creator"))
            throw Forbidden("The create event has no creator");
    }

    private static void CheckMembership(JsonObject ev, JsonObject content, string sender, string? target,
        RoomState state, string roomVersion)
    {
        // 4.1
        if (target is null) throw Forbidden("Membership events need a state_key");
        var membership = RoomState.GetString(content, "membership") ?? throw Forbidden("Membership events need content.membership");
        if (!Identifiers.IsValidUserId(target)) throw Forbidden($"Invalid state_key '{Quote.Short(target)}' for a membership event");

        var pl = state.PowerLevels;
        var senderMembership = state.Membership(sender);
        var targetMembership = state.Membership(target);
        var senderLevel = pl.GetUserLevel(sender);
        var targetLevel = pl.GetUserLevel(target);
        var joinRule = state.JoinRule;

        switch (membership)
        {
            case "join":
            {
                // 4.3.1: the creator's own join straight after the create event.
                if (IsCreatorsFirstJoin(ev, target, state)) return;
                // 4.3.2, 4.3.3
                if (sender != target) throw Forbidden("Cannot force another user to join");
                if (senderMembership == "ban") throw Forbidden("You are banned from this room");
                var alreadyIn = senderMembership is "join" or "invite";
                switch (joinRule)
                {
                    case "public":
                        return;
                    // 4.3.4
                    case "invite":
                    case "knock" when RoomVersions.Knocking(roomVersion):
                        if (alreadyIn) return;
                        throw Forbidden("You are not invited to this room");
                    // 4.3.5: restricted joins are vouched for by a resident user who may invite.
                    case "restricted" when RoomVersions.RestrictedJoinRule(roomVersion):
                    case "knock_restricted" when RoomVersions.KnockRestrictedJoinRule(roomVersion):
                    {
                        if (alreadyIn) return;
                        var authoriser = RoomState.GetString(content, "join_authorised_via_users_server")
                                         ?? throw Forbidden("You are not invited to this room");
                        if (state.Membership(authoriser) != "join")
                            throw Forbidden("The authorising user is not joined to the room");
                        if (pl.GetUserLevel(authoriser) < pl.Invite)
                            throw Forbidden("The authorising user cannot invite to this room");
                        return;
                    }
                    // 4.3.7
                    default:
                        throw Forbidden($"You are not allowed to join this room (join rule '{Quote.Short(joinRule)}')");
                }
            }
            case "invite":
                // 4.4.1: needs signature verification against the identity server's key, which we do not do.
                if (content.ContainsKey("third_party_invite")) throw Forbidden("Third-party invites are not supported");
                // 4.4.2 - 4.4.5
                if (senderMembership != "join") throw Forbidden($"{sender} is not joined to the room");
                if (targetMembership == "ban") throw Forbidden($"{target} is banned from the room");
                if (targetMembership == "join") throw Forbidden($"{target} is already in the room");
                if (senderLevel < pl.Invite) throw Forbidden("You don't have permission to invite users");
                return;
            case "leave":
                // 4.5.1: leaving, rejecting an invite or withdrawing a knock.
                if (sender == target)
                {
                    if (senderMembership is "invite" or "join" || (senderMembership == "knock" && RoomVersions.Knocking(roomVersion)))
                        return;
                    throw Forbidden("You are not in the room");
                }
                // 4.5.2 - 4.5.5: kicks and unbans.
                if (senderMembership != "join") throw Forbidden($"{sender} is not joined to the room");
                if (targetMembership == "ban" && senderLevel < pl.Ban) throw Forbidden($"You cannot unban {target}");
                if (senderLevel < pl.Kick || targetLevel >= senderLevel) throw Forbidden($"You cannot kick {target}");
                return;
            case "ban":
                // 4.6
                if (senderMembership != "join") throw Forbidden($"{sender} is not joined to the room");
                if (senderLevel < pl.Ban || targetLevel >= senderLevel) throw Forbidden($"You cannot ban {target}");
                return;
            case "knock" when RoomVersions.Knocking(roomVersion):
                // 4.7
                if (joinRule != "knock" && !(joinRule == "knock_restricted" && RoomVersions.KnockRestrictedJoinRule(roomVersion)))
                    throw Forbidden("This room does not accept knocks");
                if (sender != target) throw Forbidden("Cannot knock on behalf of another user");
                if (senderMembership is "ban" or "invite" or "join")
                    throw Forbidden($"Cannot knock while your membership is '{Quote.Short(senderMembership)}'");
                return;
            default:
                // 4.8
                throw Forbidden($"Unknown membership '{Quote.Short(membership)}'");
        }
    }

    // The spec's test is "the only previous event is the create event". Our events may not carry ids of their own
    // yet, so when the state holds nothing but the create event that is taken as the same situation; an explicit
    // prev_events list must still point at exactly the create event when the create event's id is known.
    private static bool IsCreatorsFirstJoin(JsonObject ev, string target, RoomState state)
    {
        if (target != state.Creator || state.Count != 1) return false;
        if (ev["prev_events"] is not JsonArray prev) return true;
        if (prev.Count != 1) return false;
        var createId = RoomState.GetString(state.CreateEvent!, "event_id");
        return createId is null || (prev[0] is JsonValue v && v.TryGetValue<string>(out var id) && id == createId);
    }

    private static void CheckPowerLevels(JsonObject content, string sender, RoomState state, string roomVersion)
    {
        var strict = RoomVersions.IntegerPowerLevels(roomVersion);

        // 9.1 - 9.3: shape. Parsing the new content applies exactly the per-version value rules.
        foreach (var name in PowerLevels.NamedLevelDefaults.Keys)
            if (content.TryGetPropertyValue(name, out var value) && !PowerLevels.TryReadLevel(value, strict, out _))
                throw Forbidden($"Power level '{name}' must be an integer");
        foreach (var map in new[] { "events", "notifications", "users" })
        {
            if (!content.TryGetPropertyValue(map, out var node)) continue;
            if (node is not JsonObject obj) throw Forbidden($"Power levels '{map}' must be an object");
            foreach (var (key, value) in obj)
            {
                if (!PowerLevels.TryReadLevel(value, strict, out _)) throw Forbidden($"Power level '{map}.{key}' must be an integer");
                if (map == "users" && !Identifiers.IsValidUserId(key)) throw Forbidden($"'{Quote.Short(key)}' is not a valid user id");
            }
        }

        // 9.4: the first power levels event may say anything.
        var oldEvent = state.Get("m.room.power_levels", "");
        if (oldEvent is null) return;
        var oldContent = oldEvent["content"] as JsonObject ?? new JsonObject();
        var senderLevel = state.PowerLevels.GetUserLevel(sender);

        // 9.5: named levels, compared as written (absent stays distinct from the default).
        foreach (var name in PowerLevels.NamedLevelDefaults.Keys)
            CheckChange(name, Level(oldContent, name, strict), Level(content, name, strict), senderLevel, isOtherUser: false);

        // 9.6, 9.7: events and notifications.
        foreach (var map in new[] { "events", "notifications" })
        {
            var oldMap = oldContent[map] as JsonObject;
            var newMap = content[map] as JsonObject;
            foreach (var key in Keys(oldMap, newMap))
                CheckChange($"{map}.{key}", Level(oldMap, key, strict), Level(newMap, key, strict), senderLevel, isOtherUser: false);
        }

        // 9.8, 9.9: users; others at or above your level are out of reach, yourself you may always lower.
        var oldUsers = oldContent["users"] as JsonObject;
        var newUsers = content["users"] as JsonObject;
        foreach (var user in Keys(oldUsers, newUsers))
            CheckChange($"users.{user}", Level(oldUsers, user, strict), Level(newUsers, user, strict), senderLevel,
                isOtherUser: user != sender);
    }

    private static void CheckChange(string what, long? oldLevel, long? newLevel, long senderLevel, bool isOtherUser)
    {
        if (oldLevel == newLevel) return;
        if (isOtherUser && oldLevel is { } o && o >= senderLevel)
            throw Forbidden($"You cannot change '{what}': it is at or above your own level");
        if (oldLevel > senderLevel) throw Forbidden($"You cannot change '{what}': its current value is above your level");
        if (newLevel > senderLevel) throw Forbidden($"You cannot set '{what}' above your own level");
    }

    private static long? Level(JsonObject? obj, string key, bool strict) =>
        obj is not null && obj.TryGetPropertyValue(key, out var node) && PowerLevels.TryReadLevel(node, strict, out var l)
            ? l
            : null;

    private static IEnumerable<string> Keys(JsonObject? a, JsonObject? b)
    {
        var keys = new HashSet<string>(StringComparer.Ordinal);
        if (a is not null) foreach (var kv in a) keys.Add(kv.Key);
        if (b is not null) foreach (var kv in b) keys.Add(kv.Key);
        return keys;
    }

    private static string RequireString(JsonObject ev, string key) =>
        RoomState.GetString(ev, key) ?? throw Forbidden($"Event has no valid '{key}'");

    private static MatrixException Forbidden(string reason) => MatrixException.Forbidden(reason);
}

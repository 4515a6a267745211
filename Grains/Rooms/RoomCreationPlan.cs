using System.Text.Json.Nodes;
using Homeserver.Errors;
using Homeserver.Matrix;

namespace Homeserver.Rooms;

/// <summary>One event to build: who sends what. The room grain fills in everything else.</summary>
public sealed record EventDraft(string Sender, string Type, string? StateKey, JsonObject Content);

/// <summary>
/// The events of a new room in the order the spec fixes for <c>createRoom</c>: create, the creator's join, power
/// levels (overridable), canonical alias, the preset's join rules / history visibility / guest access (unless
/// initial_state sets them), initial_state, name, topic, then invites. Never <c>m.room.encryption</c> unless asked for
/// in initial_state: clients without crypto cannot send into such rooms.
/// </summary>
public static class RoomCreationPlan
{
    public static readonly IReadOnlyList<string> Presets = ["private_chat", "trusted_private_chat", "public_chat"];

    public static List<EventDraft> Build(CreateRoomCommand command, string? alias)
    {
        var creator = command.Creator;
        var drafts = new List<EventDraft>();

        var create = ParseObject(command.CreationContentJson, "creation_content") ?? new JsonObject();
        create["room_version"] = command.RoomVersion;
        if (RoomVersions.ImplicitRoomCreator(command.RoomVersion)) create.Remove("creator");
        else create["creator"] = creator;
        drafts.Add(new EventDraft(creator, "m.room.create", "", create));

        drafts.Add(new EventDraft(creator, "m.room.member", creator, new JsonObject { ["membership"] = "join" }));

        var initialState = new List<EventDraft>();
        var initialKeys = new HashSet<(string, string)>();
        foreach (var json in command.InitialStateJson)
        {
            var item = ParseObject(json, "initial_state")!;
            var type = item["type"] is JsonValue t && t.TryGetValue<string>(out var ts) ? ts
                : throw MatrixException.BadJson("initial_state events need a string 'type'");
            var stateKey = item["state_key"] is null ? "" : item["state_key"] is JsonValue k && k.TryGetValue<string>(out var ks) ? ks
                : throw MatrixException.BadJson("initial_state 'state_key' must be a string");
            if (item["content"] is not JsonObject content) throw MatrixException.BadJson("initial_state events need an object 'content'");
            // Membership and creation are the server's job here; letting them through would fork the plan's order.
            if (type is "m.room.create" or "m.room.member")
                throw MatrixException.BadJson($"'{Quote.Short(type)}' cannot be set through initial_state");
            initialState.Add(new EventDraft(creator, type, stateKey, (JsonObject)content.DeepClone()));
            initialKeys.Add((type, stateKey));
        }

        var trusted = command.Preset == "trusted_private_chat";
        var publicChat = command.Preset == "public_chat";
        var fromInitial = initialState.FirstOrDefault(d => d.Type == "m.room.power_levels" && d.StateKey == "");
        if (fromInitial is not null) initialState.Remove(fromInitial);
        var powerLevels = fromInitial?.Content ?? DefaultPowerLevels(creator, publicChat);
        if (trusted && fromInitial is null && powerLevels["users"] is JsonObject users)
            foreach (var invitee in command.Invite) users[invitee] = 100;
        if (ParseObject(command.PowerLevelOverrideJson, "power_level_content_override") is { } overrides)
            foreach (var (key, value) in overrides) powerLevels[key] = value?.DeepClone();
        drafts.Add(new EventDraft(creator, "m.room.power_levels", "", powerLevels));

        if (alias is not null)
            drafts.Add(new EventDraft(creator, "m.room.canonical_alias", "", new JsonObject { ["alias"] = alias }));

        void Preset(string type, JsonObject content)
        {
            if (!initialKeys.Contains((type, ""))) drafts.Add(new EventDraft(creator, type, "", content));
        }
        Preset("m.room.join_rules", new JsonObject { ["join_rule"] = publicChat ? "public" : "invite" });
        Preset("m.room.history_visibility", new JsonObject { ["history_visibility"] = "shared" });
        // A public chat's "forbidden" is what a room without the event means: like Synapse, only can_join is written.
        if (!publicChat) Preset("m.room.guest_access", new JsonObject { ["guest_access"] = "can_join" });

        drafts.AddRange(initialState);

        if (command.Name is not null)
            drafts.Add(new EventDraft(creator, "m.room.name", "", new JsonObject { ["name"] = command.Name }));
        if (command.Topic is not null)
            drafts.Add(new EventDraft(creator, "m.room.topic", "", new JsonObject
            {
                ["topic"] = command.Topic,
                ["m.topic"] = new JsonArray(new JsonObject { ["body"] = command.Topic, ["mimetype"] = "text/plain" }),
            }));

        foreach (var invitee in command.Invite)
        {
            var content = new JsonObject { ["membership"] = "invite" };
            if (command.IsDirect) content["is_direct"] = true;
            drafts.Add(new EventDraft(creator, "m.room.member", invitee, content));
        }
        return drafts;
    }

    // Synapse's defaults: the creator alone at 100; private chats let members invite.
    private static JsonObject DefaultPowerLevels(string creator, bool publicChat) => new()
    {
        ["users"] = new JsonObject { [creator] = 100 },
        ["users_default"] = 0,
        ["events"] = new JsonObject
        {
            ["m.room.name"] = 50,
            ["m.room.power_levels"] = 100,
            ["m.room.history_visibility"] = 100,
            ["m.room.canonical_alias"] = 50,
            ["m.room.avatar"] = 50,
            ["m.room.tombstone"] = 100,
            ["m.room.server_acl"] = 100,
            ["m.room.encryption"] = 100,
        },
        ["events_default"] = 0,
        ["state_default"] = 50,
        ["ban"] = 50,
        ["kick"] = 50,
        ["redact"] = 50,
        ["invite"] = publicChat ? 50 : 0,
    };

    private static JsonObject? ParseObject(string? json, string name)
    {
        if (json is null) return null;
        return CanonicalJson.ParseStrict(json) as JsonObject ?? throw MatrixException.BadJson($"'{name}' must be an object");
    }
}

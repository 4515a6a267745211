using System.Text.Json.Nodes;
using Homeserver.Errors;
using Homeserver.Matrix;

namespace Homeserver.Tests.Unit;

public class EventAuthTests
{
    private const string Room = "!room:example.org";
    private const string Alice = "@alice:example.org"; // creator, level 100
    private const string Bob = "@bob:example.org";     // moderator, level 50
    private const string Carol = "@carol:example.org"; // ordinary member, level 0
    private const string Dave = "@dave:remote.org";    // outsider

    private static JsonObject Ev(string type, string sender, JsonObject content, string? stateKey = null)
    {
        var ev = new JsonObject
        {
            ["type"] = type, ["room_id"] = Room, ["sender"] = sender, ["content"] = content,
            ["origin_server_ts"] = 1, ["depth"] = 1, ["prev_events"] = new JsonArray("$prev"), ["auth_events"] = new JsonArray(),
        };
        if (stateKey is not null) ev["state_key"] = stateKey;
        return ev;
    }

    private static JsonObject Member(string sender, string target, string membership, JsonObject? extra = null)
    {
        var content = extra ?? new JsonObject();
        content["membership"] = membership;
        return Ev("m.room.member", sender, content, target);
    }

    private static JsonObject Create(string version = "10", string creator = Alice) =>
        Ev("m.room.create", creator, new JsonObject { ["creator"] = creator, ["room_version"] = version }, "");

    private static JsonObject DefaultPowerLevels() => new()
    {
        ["users"] = new JsonObject { [Alice] = 100, [Bob] = 50 },
        ["users_default"] = 0, ["events_default"] = 0, ["state_default"] = 50,
        ["ban"] = 50, ["kick"] = 50, ["redact"] = 50, ["invite"] = 0,
        ["events"] = new JsonObject { ["m.room.power_levels"] = 100, ["m.room.name"] = 50 },
    };

    /// <summary>A v10 room: Alice created it, Bob (50) and Carol (0) joined; join rule as given.</summary>
    private static RoomState Room10(string joinRule = "invite", string version = "10")
    {
        var s = new RoomState();
        s.Set(Create(version));
        s.Set(Member(Alice, Alice, "join"));
        s.Set(Ev("m.room.power_levels", Alice, DefaultPowerLevels(), ""));
        s.Set(Ev("m.room.join_rules", Alice, new JsonObject { ["join_rule"] = joinRule }, ""));
        s.Set(Member(Bob, Bob, "join"));
        s.Set(Member(Carol, Carol, "join"));
        return s;
    }

    private static void Allowed(JsonObject ev, RoomState s) => EventAuth.Check(ev, s);

    private static string Denied(JsonObject ev, RoomState s)
    {
        var e = Assert.Throws<MatrixException>(() => EventAuth.Check(ev, s));
        Assert.Equal(ErrorCodes.Forbidden, e.ErrCode);
        Assert.Equal(403, e.Status);
        Assert.False(string.IsNullOrWhiteSpace(e.Message));
        return e.Message;
    }

    // ---- 1. m.room.create

    [Fact]
    public void Create_AllowedWhenWellFormed()
    {
        var create = Create();
        create.Remove("prev_events");
        Allowed(create, new RoomState());
        var withEmptyPrev = Create();
        withEmptyPrev["prev_events"] = new JsonArray();
        Allowed(withEmptyPrev, new RoomState());
    }

    [Fact]
    public void Create_RejectsPrevEventsDomainMismatchUnknownVersionAndMissingCreator()
    {
        Denied(Create(), new RoomState()); // has prev_events
        var wrongDomain = Ev("m.room.create", "@alice:other.org", new JsonObject { ["creator"] = "@alice:other.org", ["room_version"] = "10" }, "");
        wrongDomain.Remove("prev_events");
        Denied(wrongDomain, new RoomState());
        var unknown = Create("99");
        unknown.Remove("prev_events");
        Denied(unknown, new RoomState());
        var noCreator = Ev("m.room.create", Alice, new JsonObject { ["room_version"] = "10" }, "");
        noCreator.Remove("prev_events");
        Denied(noCreator, new RoomState());
        // v11 no longer needs a creator field.
        var v11 = Ev("m.room.create", Alice, new JsonObject { ["room_version"] = "11" }, "");
        v11.Remove("prev_events");
        Allowed(v11, new RoomState());
    }

    // ---- 2, 3. create event needed, m.federate

    [Fact]
    public void EventsWithoutCreateInStateAreRejected()
    {
        Assert.Contains("m.room.create", Denied(Ev("m.room.message", Alice, new JsonObject()), new RoomState()));
    }

    [Fact]
    public void NonFederatingRoomRejectsRemoteSenders()
    {
        var s = Room10("public");
        var create = Create();
        create["content"]!["m.federate"] = false;
        s.Set(create);
        Denied(Member(Dave, Dave, "join"), s);
        Allowed(Ev("m.room.message", Carol, new JsonObject()), s);
    }

    // ---- 4.3 joins

    [Fact]
    public void CreatorsFirstJoinIsAllowed()
    {
        var s = new RoomState();
        s.Set(Create());
        Allowed(Member(Alice, Alice, "join"), s);
        // Anyone else cannot join a room with no join rules (defaults to invite).
        Denied(Member(Bob, Bob, "join"), s);
    }

    [Fact]
    public void CreatorsFirstJoinChecksPrevEventWhenCreateIdIsKnown()
    {
        var s = new RoomState();
        var create = Create();
        create["event_id"] = "$create";
        s.Set(create);
        var join = Member(Alice, Alice, "join");
        join["prev_events"] = new JsonArray("$create");
        Allowed(join, s);
        join["prev_events"] = new JsonArray("$elsewhere");
        Denied(join, s);
    }

    [Fact]
    public void Join_PublicRoomAllowsAnyone_ButNotForOthersOrBanned()
    {
        var s = Room10("public");
        Allowed(Member(Dave, Dave, "join"), s);
        Assert.Contains("another user", Denied(Member(Alice, Dave, "join"), s));
        s.Set(Member(Alice, Dave, "ban"));
        Assert.Contains("banned", Denied(Member(Dave, Dave, "join"), s));
    }

    [Theory]
    [InlineData("invite")]
    [InlineData("knock")]
    [InlineData("knock_restricted")]
    [InlineData("restricted")]
    public void Join_InviteLikeRulesNeedInviteOrJoin(string rule)
    {
        var s = Room10(rule);
        Denied(Member(Dave, Dave, "join"), s);
        s.Set(Member(Alice, Dave, "invite"));
        Allowed(Member(Dave, Dave, "join"), s);
        // Re-joining (e.g. a profile change) is fine.
        Allowed(Member(Carol, Carol, "join"), s);
    }

    [Fact]
    public void Join_PrivateOrUnknownRuleRejects()
    {
        Denied(Member(Dave, Dave, "join"), Room10("private"));
        Denied(Member(Dave, Dave, "join"), Room10("something"));
    }

    [Theory]
    [InlineData("restricted")]
    [InlineData("knock_restricted")]
    public void Join_RestrictedNeedsAnAuthorisingUserWhoCanInvite(string rule)
    {
        var s = Room10(rule);
        var pl = DefaultPowerLevels();
        pl["invite"] = 50;
        s.Set(Ev("m.room.power_levels", Alice, pl, ""));

        Denied(Member(Dave, Dave, "join"), s);
        Allowed(Member(Dave, Dave, "join", new JsonObject { ["join_authorised_via_users_server"] = Bob }), s);
        Assert.Contains("cannot invite", Denied(Member(Dave, Dave, "join", new JsonObject { ["join_authorised_via_users_server"] = Carol }), s));
        Assert.Contains("not joined", Denied(Member(Dave, Dave, "join", new JsonObject { ["join_authorised_via_users_server"] = "@ghost:example.org" }), s));
    }

    [Fact]
    public void Join_KnockRestrictedIsNotAJoinRuleBeforeV10()
    {
        var s = Room10("knock_restricted", version: "9");
        s.Set(Member(Alice, Dave, "invite"));
        Denied(Member(Dave, Dave, "join"), s);
    }

    // ---- 4.4 invites

    [Fact]
    public void Invite_RequiresJoinedSenderAndInviteLevel()
    {
        var s = Room10();
        Allowed(Member(Carol, Dave, "invite"), s);

        var pl = DefaultPowerLevels();
        pl["invite"] = 50;
        s.Set(Ev("m.room.power_levels", Alice, pl, ""));
        Assert.Contains("invite", Denied(Member(Carol, Dave, "invite"), s));
        Allowed(Member(Bob, Dave, "invite"), s);

        // A sender who is not joined cannot invite.
        Denied(Member("@eve:example.org", Dave, "invite"), s);
    }

    [Fact]
    public void Invite_TargetMustNotBeJoinedOrBanned()
    {
        var s = Room10();
        Assert.Contains("already in the room", Denied(Member(Alice, Carol, "invite"), s));
        s.Set(Member(Alice, Dave, "ban"));
        Assert.Contains("banned", Denied(Member(Alice, Dave, "invite"), s));
        // Re-inviting someone already invited, or who left, is allowed.
        s.Set(Member(Alice, Dave, "leave"));
        Allowed(Member(Alice, Dave, "invite"), s);
    }

    [Fact]
    public void Invite_ThirdPartyInvitesAreRejected()
    {
        var extra = new JsonObject { ["third_party_invite"] = new JsonObject { ["signed"] = new JsonObject { ["mxid"] = Dave, ["token"] = "t" } } };
        Assert.Contains("Third-party", Denied(Member(Alice, Dave, "invite", extra), Room10()));
    }

    // ---- 4.5 leave: self-leave, kicks, unbans

    [Fact]
    public void Leave_SelfLeaveFromJoinInviteOrKnock()
    {
        var s = Room10("knock");
        Allowed(Member(Carol, Carol, "leave"), s);
        s.Set(Member(Alice, Dave, "invite"));
        Allowed(Member(Dave, Dave, "leave"), s); // reject invite
        s.Set(Member(Dave, Dave, "knock"));
        Allowed(Member(Dave, Dave, "leave"), s); // withdraw knock
        s.Set(Member(Dave, Dave, "leave"));
        Denied(Member(Dave, Dave, "leave"), s);
        s.Set(Member(Alice, Dave, "ban"));
        Denied(Member(Dave, Dave, "leave"), s); // cannot unban yourself
    }

    [Fact]
    public void Leave_KickNeedsKickLevelAndHigherLevelThanTarget()
    {
        var s = Room10();
        Allowed(Member(Bob, Carol, "leave"), s);    // 50 kicks 0
        Allowed(Member(Alice, Bob, "leave"), s);    // 100 kicks 50
        Denied(Member(Carol, Bob, "leave"), s);     // 0 < kick level
        Denied(Member(Bob, Alice, "leave"), s);     // target above
        var pl = DefaultPowerLevels();
        pl["users"]![Carol] = 50;
        s.Set(Ev("m.room.power_levels", Alice, pl, ""));
        Assert.Contains("kick", Denied(Member(Bob, Carol, "leave"), s)); // equal level
        // Kicker must be joined.
        s.Set(Member(Bob, Bob, "leave"));
        Denied(Member(Bob, "@x:example.org", "leave"), s);
    }

    [Fact]
    public void Leave_UnbanNeedsBanLevelAndKickRules()
    {
        var s = Room10();
        s.Set(Member(Alice, Dave, "ban"));
        Allowed(Member(Bob, Dave, "leave"), s);
        Assert.Contains("unban", Denied(Member(Carol, Dave, "leave"), s));
        var pl = DefaultPowerLevels();
        pl["ban"] = 60;
        s.Set(Ev("m.room.power_levels", Alice, pl, ""));
        Denied(Member(Bob, Dave, "leave"), s);
    }

    // ---- 4.6 ban

    [Fact]
    public void Ban_NeedsBanLevelAndHigherLevelThanTarget()
    {
        var s = Room10();
        Allowed(Member(Bob, Carol, "ban"), s);
        Allowed(Member(Bob, Dave, "ban"), s); // never in the room
        Denied(Member(Carol, Dave, "ban"), s);
        Denied(Member(Bob, Alice, "ban"), s);
        Denied(Member(Bob, Bob, "ban"), s);   // equal level (self)
        s.Set(Member(Bob, Bob, "leave"));
        Denied(Member(Bob, Carol, "ban"), s); // not joined
    }

    // ---- 4.7 knock, 4.8 unknown

    [Fact]
    public void Knock_OnlyInKnockRoomsForOneselfWhenNotAlreadyIn()
    {
        Allowed(Member(Dave, Dave, "knock"), Room10("knock"));
        Allowed(Member(Dave, Dave, "knock"), Room10("knock_restricted"));
        Denied(Member(Dave, Dave, "knock"), Room10("invite"));
        Denied(Member(Dave, Dave, "knock"), Room10("public"));
        Denied(Member(Alice, Dave, "knock"), Room10("knock"));
        Denied(Member(Carol, Carol, "knock"), Room10("knock")); // already joined
        var s = Room10("knock");
        s.Set(Member(Alice, Dave, "ban"));
        Denied(Member(Dave, Dave, "knock"), s);
        Denied(Member(Dave, Dave, "knock"), Room10("knock", version: "6")); // no knocking before v7
    }

    [Fact]
    public void Member_RejectsUnknownMembershipAndMissingFields()
    {
        var s = Room10();
        Denied(Member(Carol, Carol, "dance"), s);
        var noKey = Member(Carol, Carol, "join");
        noKey.Remove("state_key");
        Denied(noKey, s);
        Denied(Ev("m.room.member", Carol, new JsonObject(), Carol), s);
    }

    // ---- 5. sender must be joined

    [Fact]
    public void OrdinaryEventsNeedAJoinedSender()
    {
        var s = Room10();
        Allowed(Ev("m.room.message", Carol, new JsonObject { ["body"] = "hi" }), s);
        Assert.Contains("not joined", Denied(Ev("m.room.message", Dave, new JsonObject()), s));
        s.Set(Member(Alice, Dave, "invite"));
        Denied(Ev("m.room.message", Dave, new JsonObject()), s);
        s.Set(Member(Carol, Carol, "leave"));
        Denied(Ev("m.room.message", Carol, new JsonObject()), s);
    }

    // ---- 6. third-party invite events

    [Fact]
    public void ThirdPartyInviteEventNeedsInviteLevel()
    {
        var s = Room10();
        Allowed(Ev("m.room.third_party_invite", Carol, new JsonObject(), "token"), s);
        var pl = DefaultPowerLevels();
        pl["invite"] = 10;
        s.Set(Ev("m.room.power_levels", Alice, pl, ""));
        Denied(Ev("m.room.third_party_invite", Carol, new JsonObject(), "token"), s);
    }

    // ---- 7, 8. required level, user-keyed state

    [Fact]
    public void EventsNeedTheirRequiredLevel()
    {
        var s = Room10();
        Denied(Ev("m.room.topic", Carol, new JsonObject { ["topic"] = "t" }, ""), s); // state_default 50
        Allowed(Ev("m.room.topic", Bob, new JsonObject { ["topic"] = "t" }, ""), s);
        Allowed(Ev("m.room.name", Bob, new JsonObject { ["name"] = "n" }, ""), s);     // events: 50
        var pl = DefaultPowerLevels();
        pl["events_default"] = 10;
        pl["events"]!["m.reaction"] = 0;
        s.Set(Ev("m.room.power_levels", Alice, pl, ""));
        Denied(Ev("m.room.message", Carol, new JsonObject()), s);
        Allowed(Ev("m.reaction", Carol, new JsonObject()), s);
        // Redactions only face the ordinary send level in the auth rules.
        Allowed(Ev("m.room.redaction", Bob, new JsonObject { ["redacts"] = "$x" }), s);
    }

    [Fact]
    public void WithoutPowerLevelsOnlyTheCreatorSendsState()
    {
        var s = new RoomState();
        s.Set(Create());
        s.Set(Member(Alice, Alice, "join"));
        s.Set(Ev("m.room.join_rules", Alice, new JsonObject { ["join_rule"] = "public" }, ""));
        s.Set(Member(Carol, Carol, "join"));
        Allowed(Ev("m.room.name", Alice, new JsonObject(), ""), s);
        Denied(Ev("m.room.name", Carol, new JsonObject(), ""), s);
        Allowed(Ev("m.room.message", Carol, new JsonObject()), s);
    }

    [Fact]
    public void StateKeyedByAnotherUserIsRejected()
    {
        var s = Room10();
        var pl = DefaultPowerLevels();
        pl["state_default"] = 0;
        s.Set(Ev("m.room.power_levels", Alice, pl, ""));
        Allowed(Ev("com.example.status", Carol, new JsonObject(), Carol), s);
        Allowed(Ev("com.example.status", Carol, new JsonObject(), "not-a-user"), s);
        Assert.Contains("another user", Denied(Ev("com.example.status", Carol, new JsonObject(), Bob), s));
        Denied(Ev("com.example.status", Alice, new JsonObject(), Bob), s); // even for admins
    }

    [Fact]
    public void MalformedEventsAreRejected()
    {
        var s = Room10();
        var noType = Ev("m.room.message", Carol, new JsonObject());
        noType.Remove("type");
        Denied(noType, s);
        var badSender = Ev("m.room.message", "carol", new JsonObject());
        Denied(badSender, s);
        var badContent = Ev("m.room.message", Carol, new JsonObject());
        badContent["content"] = "x";
        Denied(badContent, s);
        var numericStateKey = Ev("m.room.topic", Alice, new JsonObject());
        numericStateKey["state_key"] = 5;
        Denied(numericStateKey, s);
    }

    // ---- 9. power levels

    private static JsonObject PlChange(string sender, Action<JsonObject> edit)
    {
        var pl = DefaultPowerLevels();
        edit(pl);
        return Ev("m.room.power_levels", sender, pl, "");
    }

    private static RoomState RoomWhereModsEditPowerLevels()
    {
        var s = Room10();
        var pl = DefaultPowerLevels();
        pl["events"]!["m.room.power_levels"] = 50;
        s.Set(Ev("m.room.power_levels", Alice, pl, ""));
        return s;
    }

    private static JsonObject ModPlChange(Action<JsonObject> edit) => PlChange(Bob, pl =>
    {
        pl["events"]!["m.room.power_levels"] = 50;
        edit(pl);
    });

    [Fact]
    public void PowerLevels_FirstEventMayBeAnything()
    {
        var s = new RoomState();
        s.Set(Create());
        s.Set(Member(Alice, Alice, "join"));
        Allowed(Ev("m.room.power_levels", Alice, new JsonObject { ["users"] = new JsonObject { [Alice] = 1000, [Bob] = 500 } }, ""), s);
    }

    [Fact]
    public void PowerLevels_V10RequiresIntegers()
    {
        var s = Room10();
        Assert.Contains("integer", Denied(PlChange(Alice, pl => pl["ban"] = "50"), s));
        Denied(PlChange(Alice, pl => pl["users"]![Carol] = "10"), s);
        Denied(PlChange(Alice, pl => pl["events"]!["m.room.topic"] = 1.5), s);
        Denied(PlChange(Alice, pl => pl["notifications"] = new JsonObject { ["room"] = "50" }), s);
        Denied(PlChange(Alice, pl => pl["events"] = new JsonArray()), s);
        Denied(PlChange(Alice, pl => pl["users"]!["not-a-user"] = 10), s);
        Allowed(PlChange(Alice, pl => pl["users"]![Carol] = 10), s);
    }

    [Fact]
    public void PowerLevels_OlderRoomsAcceptStringLevels()
    {
        var s = Room10(version: "9");
        Allowed(PlChange(Alice, pl => pl["ban"] = "60"), s);
        Denied(PlChange(Alice, pl => pl["ban"] = "sixty"), s);
    }

    [Fact]
    public void PowerLevels_NamedLevels()
    {
        var s = RoomWhereModsEditPowerLevels();
        Allowed(ModPlChange(pl => pl["kick"] = 40), s);
        Allowed(ModPlChange(pl => pl["invite"] = 50), s);          // new value equal to own
        Denied(ModPlChange(pl => pl["ban"] = 51), s);              // new value above own
        Allowed(ModPlChange(pl => pl.Remove("ban")), s);           // removing a value at own level

        var high = DefaultPowerLevels();
        high["events"]!["m.room.power_levels"] = 50;
        high["redact"] = 75;
        s.Set(Ev("m.room.power_levels", Alice, high, ""));
        Denied(ModPlChange(pl => pl["redact"] = 10), s);           // current value above own
        Denied(ModPlChange(pl => pl.Remove("redact")), s);
        Allowed(ModPlChange(pl => pl["redact"] = 75), s);          // unchanged is fine
    }

    [Fact]
    public void PowerLevels_EventsAndNotifications()
    {
        var s = RoomWhereModsEditPowerLevels();
        Allowed(ModPlChange(pl => pl["events"]!["m.room.topic"] = 50), s);
        Denied(ModPlChange(pl => pl["events"]!["m.room.topic"] = 60), s);
        Allowed(ModPlChange(pl => pl["notifications"] = new JsonObject { ["room"] = 50 }), s);
        Denied(ModPlChange(pl => pl["notifications"] = new JsonObject { ["room"] = 51 }), s);

        var high = DefaultPowerLevels();
        high["events"]!["m.room.power_levels"] = 50;
        high["events"]!["m.room.tombstone"] = 100;
        s.Set(Ev("m.room.power_levels", Alice, high, ""));
        Denied(ModPlChange(pl => pl["events"]!["m.room.tombstone"] = 0), s);   // changing one above own
        Allowed(ModPlChange(pl => pl["events"]!["m.room.tombstone"] = 100), s); // left alone
    }

    [Fact]
    public void PowerLevels_Users()
    {
        var s = RoomWhereModsEditPowerLevels();
        Allowed(ModPlChange(pl => pl["users"]![Carol] = 50), s);    // raise someone up to own level
        Denied(ModPlChange(pl => pl["users"]![Carol] = 51), s);      // above own level
        Denied(ModPlChange(pl => pl["users"]![Alice] = 0), s);       // demote a higher user
        Allowed(ModPlChange(pl => pl["users"]![Bob] = 10), s);       // self-demotion
        Allowed(ModPlChange(pl => pl["users"]!.AsObject().Remove(Bob)), s); // self-removal
        Denied(ModPlChange(pl => pl["users"]![Bob] = 60), s);        // self-promotion

        var peers = DefaultPowerLevels();
        peers["events"]!["m.room.power_levels"] = 50;
        peers["users"]![Carol] = 50;
        s.Set(Ev("m.room.power_levels", Alice, peers, ""));
        Assert.Contains("at or above", Denied(ModPlChange(pl => pl["users"]![Carol] = 0), s)); // peer at own level
        Denied(ModPlChange(pl => pl["users"]!.AsObject().Remove(Carol)), s);
        Allowed(ModPlChange(pl => pl["users"]![Carol] = 50), s);      // unchanged peer
        Allowed(PlChange(Alice, pl => pl["users"]![Carol] = 0), s);   // admin demotes a moderator
    }

    [Fact]
    public void PowerLevels_NeedTheEventLevelFirst()
    {
        var s = Room10();
        Denied(PlChange(Bob, pl => pl["users"]![Carol] = 10), s); // m.room.power_levels needs 100 here
    }

    // ---- redactions at the client API

    [Fact]
    public void CanRedact_OwnEventsOrWithRedactLevel()
    {
        var s = Room10();
        var carolsMessage = Ev("m.room.message", Carol, new JsonObject { ["body"] = "x" });
        var bobsMessage = Ev("m.room.message", Bob, new JsonObject { ["body"] = "x" });
        Assert.True(EventAuth.CanRedact(Ev("m.room.redaction", Carol, new JsonObject()), carolsMessage, s));
        Assert.False(EventAuth.CanRedact(Ev("m.room.redaction", Carol, new JsonObject()), bobsMessage, s));
        Assert.True(EventAuth.CanRedact(Ev("m.room.redaction", Bob, new JsonObject()), carolsMessage, s));
        var otherRoom = Ev("m.room.message", Carol, new JsonObject());
        otherRoom["room_id"] = "!other:example.org";
        Assert.False(EventAuth.CanRedact(Ev("m.room.redaction", Bob, new JsonObject()), otherRoom, s));
    }

    [Fact]
    public void ShouldApplyRedaction_SameServerOrRedactLevel()
    {
        var s = Room10();
        var carolsMessage = Ev("m.room.message", Carol, new JsonObject());
        var davesMessage = Ev("m.room.message", Dave, new JsonObject());
        Assert.True(EventAuth.ShouldApplyRedaction(Ev("m.room.redaction", Carol, new JsonObject()), carolsMessage, s));
        Assert.False(EventAuth.ShouldApplyRedaction(Ev("m.room.redaction", Carol, new JsonObject()), davesMessage, s));
        Assert.True(EventAuth.ShouldApplyRedaction(Ev("m.room.redaction", Bob, new JsonObject()), davesMessage, s));
    }
}

using Homeserver.Matrix;
using Homeserver.Rooms;
using System.Text.Json.Nodes;

namespace Homeserver.Tests.Unit;

/// <summary>The room's shared state snapshot: a new state event makes the next snapshot without touching the one
/// other readers hold, and the member sets follow memberships.</summary>
public sealed class CurrentRoomStateTests
{
    private static long _topological;

    private static StoredEvent Member(string userId, string membership) => State("m.room.member", userId, $"{{\"membership\":\"{membership}\"}}");

    private static StoredEvent State(string type, string stateKey, string content)
    {
        var t = Interlocked.Increment(ref _topological);
        var json = $"{{\"type\":\"{type}\",\"state_key\":\"{stateKey}\",\"sender\":\"@a:x\",\"content\":{content},\"event_id\":\"$e{t}\"}}";
        return new StoredEvent($"$e{t}", "!r:x", type, stateKey, "@a:x", 0, t, 0, t, json, null, null, false);
    }

    [Fact]
    public void A_new_member_makes_a_new_snapshot_and_leaves_the_old_one_as_it_was()
    {
        var before = new CurrentRoomState([State("m.room.create", "", "{}"), Member("@a:x", "join"), Member("@b:x", "invite")]);
        var after = before.With(Member("@b:x", "join")).With(Member("@c:x", "join"));

        Assert.Equal(["@a:x"], before.JoinedMembers);
        Assert.Equal(["@b:x"], before.InvitedMembers);
        Assert.Equal("invite", before.Membership("@b:x"));
        Assert.Null(before.Get("m.room.member", "@c:x"));
        Assert.Equal(3, before.Events.Count);

        Assert.Equal(["@a:x", "@b:x", "@c:x"], after.JoinedMembers);
        Assert.Empty(after.InvitedMembers);
        Assert.Equal("join", after.Membership("@b:x"));
        Assert.Equal(4, after.Events.Count);
        Assert.Equal(3, after.JoinedMemberCount);
    }

    /// <summary>Loaded from the database, each member event comes with the membership its state row holds, which is
    /// then not read from its JSON; a row without one (none recorded) leaves it to the JSON.</summary>
    [Fact]
    public void Memberships_read_beside_the_events_are_used_and_the_json_decides_where_none_was_read()
    {
        var state = new CurrentRoomState([
            (Member("@a:x", "join"), "join"), (Member("@b:x", "join"), "invite"), (Member("@c:x", "invite"), null),
            (State("m.room.create", "", "{}"), null), (Member("@d:x", "join"), "leave"),
        ]);
        Assert.Equal(["@a:x"], state.JoinedMembers);
        Assert.Equal(["@b:x", "@c:x"], state.InvitedMembers);
        Assert.Equal(5, state.EventCount);
    }

    /// <summary>Past a quarter of the loaded keys, the keys set since are merged into a new dictionary of the loaded
    /// state: every snapshot before and after reads the same as one built from its events.</summary>
    [Fact]
    public void Many_changes_read_the_same_across_the_merge_and_leave_older_snapshots_as_they_were()
    {
        var loaded = new CurrentRoomState(Enumerable.Range(0, 200).Select(i => Member($"@u{i}:x", "join")).Append(State("m.room.create", "", "{}")));
        var snapshots = new List<(CurrentRoomState State, Dictionary<(string, string), StoredEvent> Expected)>
        {
            (loaded, loaded.Events.ToDictionary(e => (e.Type, e.StateKey!))),
        };
        var state = loaded;
        for (var i = 0; i < 300; i++)
        {
            // Existing members leave and rejoin, and new ones join: keys replaced and keys added.
            var e = i % 3 == 0 ? Member($"@new{i}:x", "join") : Member($"@u{i % 200}:x", i % 2 == 0 ? "leave" : "join");
            state = state.With(e);
            var expected = new Dictionary<(string, string), StoredEvent>(snapshots[^1].Expected) { [(e.Type, e.StateKey!)] = e };
            snapshots.Add((state, expected));
        }
        foreach (var (snapshot, expected) in snapshots)
        {
            Assert.Equal(expected.Count, snapshot.EventCount);
            Assert.Equal(expected.Values.Select(e => e.EventId).Order(), snapshot.Events.Select(e => e.EventId).Order());
            foreach (var ((type, key), e) in expected) Assert.Same(e, snapshot.Get(type, key));
            var joined = expected.Values.Where(e => e.Type == "m.room.member" && e.Json.Contains("\"join\"")).Select(e => e.StateKey!).Order(StringComparer.Ordinal);
            Assert.Equal(joined, snapshot.JoinedMembers.Order(StringComparer.Ordinal));
        }
        Assert.Null(state.Get("m.room.member", "@nobody:x"));
    }

    [Fact]
    public void Leaving_and_bans_take_members_out_of_the_sets()
    {
        var state = new CurrentRoomState([Member("@a:x", "join"), Member("@b:x", "join"), Member("@c:x", "invite")])
            .With(Member("@a:x", "leave")).With(Member("@c:x", "ban"));
        Assert.Equal(["@b:x"], state.JoinedMembers);
        Assert.Empty(state.InvitedMembers);
        Assert.Equal("ban", state.Membership("@c:x"));
    }

    [Fact]
    public void Power_levels_follow_a_new_power_levels_event()
    {
        var state = new CurrentRoomState([State("m.room.create", "", "{\"creator\":\"@a:x\"}"), Member("@a:x", "join")]);
        Assert.Equal(0, state.PowerLevels.GetUserLevel("@b:x"));
        var raised = state.With(State("m.room.power_levels", "", "{\"users\":{\"@b:x\":50}}"));
        Assert.Equal(50, raised.PowerLevels.GetUserLevel("@b:x"));
        Assert.Equal(0, state.PowerLevels.GetUserLevel("@b:x"));
        // Another event keeps the power levels it had.
        Assert.Equal(50, raised.With(Member("@c:x", "join")).PowerLevels.GetUserLevel("@b:x"));
    }

    [Fact]
    public void A_clone_of_the_auth_state_is_independent_of_its_original()
    {
        JsonObject Ev(string user, string membership) => new()
        {
            ["type"] = "m.room.member", ["state_key"] = user, ["content"] = new JsonObject { ["membership"] = membership },
        };
        var original = new RoomState([Ev("@a:x", "join"), Ev("@b:x", "join")]);
        var copy = original.Clone();
        copy.Set(Ev("@c:x", "join"));
        copy.Set(Ev("@a:x", "leave"));
        Assert.True(copy.Remove("m.room.member", "@b:x"));
        Assert.False(copy.Remove("m.room.member", "@nobody:x"));

        Assert.Equal(["@a:x", "@b:x"], original.Members().Order(StringComparer.Ordinal));
        Assert.Equal(["@c:x"], copy.Members());
        Assert.Equal(2, original.Count);
        Assert.Equal(2, copy.Count);
    }
}

using System.Text.Json.Nodes;
using Homeserver.Errors;
using Homeserver.Matrix;
using Homeserver.Rooms;
using Homeserver.Streams;
using Npgsql;

namespace Homeserver.Tests.Rooms;

public sealed class RoomGrainTests(RoomClusterFixture fx) : IClassFixture<RoomClusterFixture>
{
    private const string Alice = "@alice:localhost";
    private const string Bob = "@bob:localhost";
    private const string Carol = "@carol:localhost";

    private static JsonObject Parse(string json) => (JsonObject)JsonNode.Parse(json)!;

    private static SendEventCommand Message(string sender, string body, string? txn = null, string? device = "DEV") =>
        new(sender, device, txn, "m.room.message", null, new JsonObject { ["msgtype"] = "m.text", ["body"] = body }.ToJsonString());

    private async Task<(string RoomId, RoomWriteResult Created)> CreateAsync(CreateRoomCommand command, int silo = 0)
    {
        var roomId = RoomClusterFixture.NewRoomId();
        var created = await fx.Room(roomId, silo).CreateAsync(command);
        return (roomId, created);
    }

    [Fact]
    public async Task A_room_activates_on_the_silo_that_is_home_to_its_events_writer()
    {
        var silos = fx.Cluster.Silos.Select(s => s.Get<Orleans.Runtime.ILocalSiloDetails>().SiloAddress).ToList();
        var management = fx.Cluster.Silos[0].Grains.GetGrain<IManagementGrain>(0);
        var awayFromCaller = 0;
        // Created through both silos: without the placement a room would mostly stay on the silo that first called it.
        for (var i = 0; i < 8; i++)
        {
            var (roomId, created) = await CreateAsync(RoomClusterFixture.Create(Alice), silo: i % 2);
            var home = StreamWriterHome.Choose(StreamNames.WriterKey(StreamNames.Events, created.Writer), silos);
            if (!home.Equals(silos[i % 2])) awayFromCaller++;
            Assert.Equal(home, await management.GetActivationAddress(fx.Room(roomId)));
        }
        Assert.True(awayFromCaller > 0, "every room was created through its writer's home, so placement was not tested");
    }

    [Fact]
    public async Task Create_writes_the_spec_order_with_a_linear_hash_chained_history()
    {
        var (roomId, created) = await CreateAsync(RoomClusterFixture.Create(Alice, name: "Room", topic: "Talk", invite: [Bob]));
        await fx.WaitAsync(1, created);

        var events = await fx.Store(1).GetEventsByTopologicalAsync(roomId, 0, Direction.Forwards, 100);
        Assert.Equal(
            ["m.room.create", "m.room.member", "m.room.power_levels", "m.room.join_rules", "m.room.history_visibility",
             "m.room.guest_access", "m.room.name", "m.room.topic", "m.room.member"],
            events.Select(e => e.Type));
        Assert.Equal(Enumerable.Range(1, events.Count).Select(i => (long)i), events.Select(e => e.Topological));
        Assert.DoesNotContain(events, e => e.Type == "m.room.encryption");
        Assert.Equal(created.EventId, events[^1].EventId);
        Assert.Equal(Bob, events[^1].StateKey);

        for (var i = 0; i < events.Count; i++)
        {
            var json = Parse(events[i].Json);
            // The id is the reference hash of the stored event, recomputed here.
            Assert.Equal(events[i].EventId, EventHashing.ComputeEventId(json, "10"));
            Assert.True(EventHashing.ComputeContentHash(json.DeepClone().AsObject().Also(j => j.Remove("event_id"))) == json["hashes"]!["sha256"]!.GetValue<string>());
            var prev = json["prev_events"]!.AsArray().Select(p => p!.GetValue<string>()).ToArray();
            Assert.Equal(i == 0 ? [] : [events[i - 1].EventId], prev);
            Assert.Equal(i + 1, json["depth"]!.GetValue<long>());
        }
        Assert.True(events.Zip(events.Skip(1)).All(p => p.First.StreamPosition < p.Second.StreamPosition));

        var state = await fx.Store(1).GetCurrentStateAsync(roomId);
        Assert.Equal("join", state.Membership(Alice));
        Assert.Equal("invite", state.Membership(Bob));
        var powerLevels = Parse(state.Get("m.room.power_levels", "")!.Json);
        Assert.Equal(100, powerLevels["content"]!["users"]![Alice]!.GetValue<int>());
        Assert.Equal("10", Parse(state.Get("m.room.create", "")!.Json)["content"]!["room_version"]!.GetValue<string>());
        Assert.Equal(new RoomInfo(roomId, "10", Alice, false), await fx.Store(1).GetRoomAsync(roomId));
    }

    [Theory]
    [InlineData("1")]
    [InlineData("2")]
    [InlineData("3")]
    [InlineData("4")]
    [InlineData("5")]
    [InlineData("6")]
    [InlineData("7")]
    [InlineData("8")]
    [InlineData("9")]
    [InlineData("11")]
    public async Task Every_supported_version_creates_and_accepts_messages(string version)
    {
        var (roomId, _) = await CreateAsync(RoomClusterFixture.Create(Alice, preset: "public_chat", version: version));
        var joined = await fx.Room(roomId).SetMembershipAsync(new MembershipCommand(Bob, Bob, MembershipAction.Join, null));
        var sent = await fx.Room(roomId).SendAsync(Message(Bob, "hi"));
        await fx.WaitAsync(1, sent);
        var ev = await fx.Store(1).GetEventAsync(sent.EventId!);
        Assert.NotNull(ev);
        Assert.Equal(Bob, ev.Sender);
        var json = Parse(ev.Json);
        Assert.Equal(joined.EventId, int.Parse(version) < 3
            ? json["prev_events"]![0]![0]!.GetValue<string>()
            : json["prev_events"]![0]!.GetValue<string>());
        var create = Parse((await fx.Store(1).GetCurrentStateAsync(roomId)).Get("m.room.create", "")!.Json);
        Assert.Equal(version == "11", create["content"]!["creator"] is null);
    }

    [Fact]
    public async Task A_room_deactivated_and_loaded_again_decides_as_before()
    {
        var (roomId, _) = await CreateAsync(RoomClusterFixture.Create(Alice, preset: "public_chat"));
        var room = fx.Room(roomId);
        var bobJoin = await room.SetMembershipAsync(new MembershipCommand(Bob, Bob, MembershipAction.Join, null));
        await room.SetMembershipAsync(new MembershipCommand(Alice, Carol, MembershipAction.Ban, "spam"));
        var management = fx.Cluster.Silos[0].Grains.GetGrain<IManagementGrain>(0);
        async Task<bool> ActiveAsync() => (await management.GetDetailedGrainStatistics()).Any(g => g.GrainId == room.GetGrainId());
        Assert.True(await ActiveAsync());

        // The room leaves memory, and its next call loads its state from the database (member events as bytes).
        await room.AsReference<Orleans.Core.Internal.IGrainManagementExtension>().DeactivateOnIdle();
        for (var i = 0; i < 50 && await ActiveAsync(); i++) await Task.Delay(100);
        Assert.False(await ActiveAsync());

        // Bob's membership, as loaded: joining again answers with his join; his message names it among its auth events.
        Assert.Equal(bobJoin.EventId, (await room.SetMembershipAsync(new MembershipCommand(Bob, Bob, MembershipAction.Join, null))).EventId);
        var sent = await room.SendAsync(Message(Bob, "after the reload"));
        // Carol's ban, as loaded.
        var banned = await Assert.ThrowsAsync<MatrixException>(() => room.SetMembershipAsync(new MembershipCommand(Carol, Carol, MembershipAction.Join, null)));
        Assert.Equal(403, banned.Status);
        // Bob leaving: the event says what it replaced, read from the loaded member event.
        var left = await room.SetMembershipAsync(new MembershipCommand(Bob, Bob, MembershipAction.Leave, null));
        await fx.WaitAsync(1, left);

        var message = Parse((await fx.Store(1).GetEventAsync(sent.EventId!))!.Json);
        Assert.Contains(bobJoin.EventId, message["auth_events"]!.AsArray().Select(e => e!.GetValue<string>()));
        Assert.Equal(3, message["auth_events"]!.AsArray().Count);
        var leave = Parse((await fx.Store(1).GetEventAsync(left.EventId!))!.Json);
        Assert.Equal(bobJoin.EventId, leave["unsigned"]!["replaces_state"]!.GetValue<string>());
        Assert.Equal("join", leave["unsigned"]!["prev_content"]!["membership"]!.GetValue<string>());
        // The sender's and the target's member event are one: named once.
        var authIds = leave["auth_events"]!.AsArray().Select(e => e!.GetValue<string>()).ToList();
        Assert.Equal(authIds.Distinct().Count(), authIds.Count);
        Assert.Contains(bobJoin.EventId, authIds);
    }

    [Fact]
    public async Task Unknown_room_versions_are_rejected()
    {
        var e = await Assert.ThrowsAsync<MatrixException>(() => CreateAsync(RoomClusterFixture.Create(Alice, version: "12")));
        Assert.Equal(ErrorCodes.UnsupportedRoomVersion, e.ErrCode);
        Assert.Equal(400, e.Status);
    }

    [Fact]
    public async Task Outsiders_cannot_send_and_unknown_rooms_are_not_found()
    {
        var (roomId, _) = await CreateAsync(RoomClusterFixture.Create(Alice));
        var forbidden = await Assert.ThrowsAsync<MatrixException>(() => fx.Room(roomId).SendAsync(Message(Bob, "let me in")));
        Assert.Equal((403, ErrorCodes.Forbidden), (forbidden.Status, forbidden.ErrCode));
        var joinPrivate = await Assert.ThrowsAsync<MatrixException>(() =>
            fx.Room(roomId).SetMembershipAsync(new MembershipCommand(Bob, Bob, MembershipAction.Join, null)));
        Assert.Equal(403, joinPrivate.Status);

        var missing = await Assert.ThrowsAsync<MatrixException>(() => fx.Room(RoomClusterFixture.NewRoomId()).SendAsync(Message(Alice, "x")));
        Assert.Equal((404, ErrorCodes.NotFound), (missing.Status, missing.ErrCode));
    }

    [Fact]
    public async Task Transaction_ids_make_sends_idempotent_per_device()
    {
        var (roomId, _) = await CreateAsync(RoomClusterFixture.Create(Alice));
        var first = await fx.Room(roomId).SendAsync(Message(Alice, "once", txn: "t1"));
        var again = await fx.Room(roomId, silo: 1).SendAsync(Message(Alice, "once", txn: "t1"));
        var otherDevice = await fx.Room(roomId).SendAsync(Message(Alice, "once", txn: "t1", device: "OTHER"));
        Assert.Equal(first.EventId, again.EventId);
        Assert.NotEqual(first.EventId, otherDevice.EventId);

        await fx.WaitAsync(1, otherDevice);
        var stored = await fx.Store(1).GetEventAsync(first.EventId!);
        Assert.Equal(("DEV", "t1"), (stored!.DeviceId, stored.TxnId));
        var forSender = RoomEventFormat.ToClient(stored, Alice, "DEV");
        Assert.Equal("t1", forSender["unsigned"]!["transaction_id"]!.GetValue<string>());
        Assert.Null(RoomEventFormat.ToClient(stored, Alice, "OTHER")["unsigned"]!["transaction_id"]);
        Assert.Null(RoomEventFormat.ToClient(stored, Bob, "DEV")["unsigned"]!["transaction_id"]);
        var messages = (await fx.Store(1).GetEventsByTopologicalAsync(roomId, long.MaxValue, Direction.Backwards, 10))
            .Count(e => e.Type == "m.room.message");
        Assert.Equal(2, messages);
    }

    [Fact]
    public async Task Aliases_are_unique_and_a_failed_creation_releases_its_alias()
    {
        var (roomId, _) = await CreateAsync(RoomClusterFixture.Create(Alice, alias: "unique-alias"));
        Assert.Equal(roomId, await fx.Store(1).ResolveAliasAsync("#unique-alias:localhost"));
        var state = await fx.Store(0).GetCurrentStateAsync(roomId);
        Assert.Equal("#unique-alias:localhost", RoomEventFormat.ContentString(state.Get("m.room.canonical_alias", "")!.Json, "alias"));

        var taken = await Assert.ThrowsAsync<MatrixException>(() => CreateAsync(RoomClusterFixture.Create(Bob, alias: "unique-alias")));
        Assert.Equal((400, ErrorCodes.RoomInUse), (taken.Status, taken.ErrCode));

        // Power levels that lock the creator out make creation fail on the name event: the alias must come back.
        var failing = RoomClusterFixture.Create(Alice, alias: "released", name: "x",
            powerOverride: """{"users":{"@alice:localhost":0},"events":{"m.room.name":50}}""");
        await Assert.ThrowsAsync<MatrixException>(() => CreateAsync(failing));
        Assert.Null(await fx.Store(0).ResolveAliasAsync("#released:localhost"));
        var (retried, _) = await CreateAsync(RoomClusterFixture.Create(Alice, alias: "released"));
        Assert.Equal(retried, await fx.Store(0).ResolveAliasAsync("#released:localhost"));
    }

    [Fact]
    public async Task Membership_transitions_follow_the_auth_rules()
    {
        var (roomId, _) = await CreateAsync(RoomClusterFixture.Create(Alice));
        var room = fx.Room(roomId);
        await room.SetMembershipAsync(new MembershipCommand(Alice, Bob, MembershipAction.Invite, "come"));
        await room.SetMembershipAsync(new MembershipCommand(Bob, Bob, MembershipAction.Join, null));
        // Bob (level 0) cannot kick Alice (100).
        var kick = await Assert.ThrowsAsync<MatrixException>(() => room.SetMembershipAsync(new MembershipCommand(Bob, Alice, MembershipAction.Kick, null)));
        Assert.Equal(403, kick.Status);
        // Carol was never in the room: kicking her is refused; unbanning a user who is not banned too.
        await Assert.ThrowsAsync<MatrixException>(() => room.SetMembershipAsync(new MembershipCommand(Alice, Carol, MembershipAction.Kick, null)));
        await Assert.ThrowsAsync<MatrixException>(() => room.SetMembershipAsync(new MembershipCommand(Alice, Bob, MembershipAction.Unban, null)));

        var banned = await room.SetMembershipAsync(new MembershipCommand(Alice, Bob, MembershipAction.Ban, "spam"));
        await fx.WaitAsync(1, banned);
        Assert.Equal("ban", await fx.Store(1).GetMembershipAsync(roomId, Bob));
        Assert.DoesNotContain(roomId, await fx.Store(1).GetJoinedRoomsAsync(Bob));
        var ban = await fx.Store(1).GetEventAsync(banned.EventId!);
        Assert.Equal("spam", RoomEventFormat.ContentString(ban!.Json, "reason"));
        Assert.Equal("join", Parse(ban.Json)["unsigned"]!["prev_content"]!["membership"]!.GetValue<string>());

        await Assert.ThrowsAsync<MatrixException>(() => room.SetMembershipAsync(new MembershipCommand(Bob, Bob, MembershipAction.Join, null)));
        var unbanned = await room.SetMembershipAsync(new MembershipCommand(Alice, Bob, MembershipAction.Unban, null));
        await fx.WaitAsync(1, unbanned);
        Assert.Equal("leave", await fx.Store(1).GetMembershipAsync(roomId, Bob));

        // Joining twice is a no-op answering with the existing event.
        var again = await room.SetMembershipAsync(new MembershipCommand(Alice, Alice, MembershipAction.Join, null));
        var current = (await fx.Store(0).GetCurrentStateAsync(roomId)).Get("m.room.member", Alice)!;
        Assert.Equal(current.EventId, again.EventId);
    }

    [Fact]
    public async Task Public_rooms_can_be_joined_left_and_forgotten()
    {
        var (roomId, _) = await CreateAsync(RoomClusterFixture.Create(Alice, preset: "public_chat"));
        var join = await fx.Room(roomId, 1).SetMembershipAsync(new MembershipCommand(Carol, Carol, MembershipAction.Join, null));
        await fx.WaitAsync(1, join);
        Assert.Contains(roomId, await fx.Store(1).GetJoinedRoomsAsync(Carol));
        await Assert.ThrowsAsync<MatrixException>(() => fx.Room(roomId).ForgetAsync(Carol));

        var leave = await fx.Room(roomId).SetMembershipAsync(new MembershipCommand(Carol, Carol, MembershipAction.Leave, null));
        await fx.WaitAsync(1, leave);
        Assert.DoesNotContain(roomId, await fx.Store(1).GetJoinedRoomsAsync(Carol));
        var forget = await fx.Room(roomId).ForgetAsync(Carol);
        await fx.WaitAsync(1, forget);
        Assert.True((await fx.Store(1).GetUserMembershipAsync(roomId, Carol))!.Forgotten);
    }

    [Fact]
    public async Task Redaction_strips_content_keeps_redacted_because_and_needs_permission()
    {
        var (roomId, _) = await CreateAsync(RoomClusterFixture.Create(Alice, preset: "public_chat"));
        var room = fx.Room(roomId);
        await room.SetMembershipAsync(new MembershipCommand(Bob, Bob, MembershipAction.Join, null));
        await room.SetMembershipAsync(new MembershipCommand(Carol, Carol, MembershipAction.Join, null));
        var bobs = await room.SendAsync(Message(Bob, "secret"));

        var carolTries = await Assert.ThrowsAsync<MatrixException>(() => room.RedactAsync(new RedactCommand(Carol, "DEV", "r0", bobs.EventId!, null)));
        Assert.Equal(403, carolTries.Status);
        var unknown = await Assert.ThrowsAsync<MatrixException>(() => room.RedactAsync(new RedactCommand(Alice, "DEV", "r1", "$nope", null)));
        Assert.Equal(404, unknown.Status);

        var redaction = await room.RedactAsync(new RedactCommand(Alice, "DEV", "r2", bobs.EventId!, "rude"));
        Assert.Equal(redaction.EventId, (await room.RedactAsync(new RedactCommand(Alice, "DEV", "r2", bobs.EventId!, "rude"))).EventId);
        await fx.WaitAsync(1, redaction);

        var redacted = await fx.Store(1).GetEventAsync(bobs.EventId!);
        Assert.True(redacted!.Redacted);
        var json = Parse(redacted.Json);
        Assert.Empty(json["content"]!.AsObject());
        Assert.Equal(redaction.EventId, json["unsigned"]!["redacted_because"]!["event_id"]!.GetValue<string>());
        Assert.Equal("rude", json["unsigned"]!["redacted_because"]!["content"]!["reason"]!.GetValue<string>());
        var redactionEvent = Parse((await fx.Store(1).GetEventAsync(redaction.EventId!))!.Json);
        Assert.Equal(bobs.EventId, redactionEvent["redacts"]!.GetValue<string>());
        // The id still matches the (redacted) event.
        Assert.Equal(bobs.EventId, EventHashing.ComputeEventId(json, "10"));
    }

    [Fact]
    public async Task Redacting_power_levels_changes_what_the_room_allows()
    {
        var (roomId, _) = await CreateAsync(RoomClusterFixture.Create(Alice, preset: "public_chat",
            powerOverride: """{"events_default": 0, "users": {"@alice:localhost": 100, "@bob:localhost": 50}}"""));
        var room = fx.Room(roomId);
        await room.SetMembershipAsync(new MembershipCommand(Bob, Bob, MembershipAction.Join, null));
        await room.SendAsync(new SendEventCommand(Bob, "DEV", null, "m.room.topic", "", """{"topic":"bob can"}"""));
        var pl = (await fx.Store(0).GetCurrentStateAsync(roomId)).Get("m.room.power_levels", "")!;
        await room.RedactAsync(new RedactCommand(Alice, "DEV", "pl", pl.EventId, null));
        // Redacted power levels keep "users", so Bob keeps 50: still allowed.
        await room.SendAsync(new SendEventCommand(Bob, "DEV", null, "m.room.topic", "", """{"topic":"still"}"""));
    }

    [Fact]
    public async Task Oversized_events_are_rejected_with_M_TOO_LARGE()
    {
        var (roomId, _) = await CreateAsync(RoomClusterFixture.Create(Alice));
        var big = new JsonObject { ["body"] = new string('x', 70_000) }.ToJsonString();
        var e = await Assert.ThrowsAsync<MatrixException>(() => fx.Room(roomId).SendAsync(new SendEventCommand(Alice, "DEV", "big", "m.room.message", null, big)));
        Assert.Equal((413, ErrorCodes.TooLarge), (e.Status, e.ErrCode));
        // Nothing was written: the next event follows the last good one.
        var next = await fx.Room(roomId).SendAsync(Message(Alice, "small"));
        await fx.WaitAsync(0, next);
        Assert.Equal(7, (await fx.Store(0).GetEventAsync(next.EventId!))!.Topological);
    }

    [Fact]
    public async Task Floats_and_duplicate_keys_in_content_are_bad_json()
    {
        var (roomId, _) = await CreateAsync(RoomClusterFixture.Create(Alice));
        var e = await Assert.ThrowsAsync<MatrixException>(() => fx.Room(roomId).SendAsync(new SendEventCommand(Alice, "DEV", null, "m.x", null, """{"n": 1.5}""")));
        Assert.Equal((400, ErrorCodes.BadJson), (e.Status, e.ErrCode));
    }

    [Fact]
    public async Task State_events_update_current_state_and_identical_state_is_a_no_op()
    {
        var (roomId, _) = await CreateAsync(RoomClusterFixture.Create(Alice));
        var room = fx.Room(roomId);
        var first = await room.SendAsync(new SendEventCommand(Alice, "DEV", null, "m.room.name", "", """{"name":"One"}"""));
        var same = await room.SendAsync(new SendEventCommand(Alice, "DEV", null, "m.room.name", "", """{"name":"One"}"""));
        Assert.Equal(first.EventId, same.EventId);
        var second = await room.SendAsync(new SendEventCommand(Alice, "DEV", null, "m.room.name", "", """{"name":"Two"}"""));
        await fx.WaitAsync(1, second);

        var store = fx.Store(1);
        var current = (await store.GetCurrentStateAsync(roomId)).Get("m.room.name", "")!;
        Assert.Equal(second.EventId, current.EventId);
        var firstEvent = await store.GetEventAsync(first.EventId!);
        var atFirst = await store.GetStateAtTopologicalAsync(roomId, firstEvent!.Topological);
        Assert.Equal(first.EventId, atFirst.Single(e => e.Type == "m.room.name").EventId);
        var atStream = await store.GetStateAtStreamAsync(roomId, firstEvent.StreamPosition);
        Assert.Equal(first.EventId, atStream.Single(e => e.Type == "m.room.name").EventId);
        Assert.Equal(first.EventId, (await store.GetStateEventAtAsync(roomId, "m.room.name", "", firstEvent.Topological))!.EventId);
        Assert.Equal(first.EventId, Parse(current.Json)["unsigned"]!["replaces_state"]!.GetValue<string>());
    }

    [Fact]
    public async Task Store_pages_by_stream_and_topological_position_and_reports_membership_changes()
    {
        var before = fx.Cluster.Silos[1].Get<StreamNotifier>().Current;
        var (roomId, _) = await CreateAsync(RoomClusterFixture.Create(Alice, preset: "public_chat"));
        var room = fx.Room(roomId);
        var join = await room.SetMembershipAsync(new MembershipCommand(Bob, Bob, MembershipAction.Join, null));
        var sent = new List<RoomWriteResult>();
        for (var i = 0; i < 5; i++) sent.Add(await room.SendAsync(Message(Bob, $"m{i}")));
        await fx.WaitAsync(1, sent[^1]);
        var store = fx.Store(1);
        var after = fx.Cluster.Silos[1].Get<StreamNotifier>().Current;

        var (page, limited) = await store.GetEventsByStreamAsync(roomId, join.Position, sent[^1].Position, 3);
        Assert.True(limited);
        Assert.Equal(sent.TakeLast(3).Select(s => s.EventId), page.Select(e => e.EventId));
        var (all, notLimited) = await store.GetEventsByStreamAsync(roomId, join.Position, sent[^1].Position, 10);
        Assert.False(notLimited);
        Assert.Equal(sent.Select(s => s.EventId), all.Select(e => e.EventId));

        var top = await store.GetMaxTopologicalAsync(roomId);
        var back = await store.GetEventsByTopologicalAsync(roomId, top + 1, Direction.Backwards, 2);
        Assert.Equal(new[] { sent[4].EventId, sent[3].EventId }, back.Select(e => e.EventId));
        var forward = await store.GetEventsByTopologicalAsync(roomId, back[^1].Topological, Direction.Forwards, 10);
        Assert.Equal(new[] { sent[4].EventId }, forward.Select(e => e.EventId));
        var bounded = await store.GetEventsByTopologicalAsync(roomId, 0, Direction.Forwards, 10, toExclusive: 3);
        Assert.Equal(new long[] { 1, 2 }, bounded.Select(e => e.Topological));

        var changes = await store.GetMembershipChangesAsync(Bob, before, after);
        var change = Assert.Single(changes, c => c.RoomId == roomId);
        Assert.Equal(("join", join.EventId), (change.Membership, change.EventId));
        Assert.DoesNotContain(await store.GetMembershipChangesAsync(Bob, after, after), c => c.RoomId == roomId);
        Assert.Equal("join", await store.GetMembershipAtAsync(roomId, Bob, top));
        Assert.Null(await store.GetMembershipAtAsync(roomId, Bob, 1));
    }

    [Fact]
    public async Task Caches_on_the_other_silo_are_invalidated_before_its_reader_advances()
    {
        var (roomId, created) = await CreateAsync(RoomClusterFixture.Create(Alice, name: "Before"));
        await fx.WaitAsync(1, created);
        var store = fx.Store(1);
        Assert.Equal("Before", RoomEventFormat.ContentString((await store.GetCurrentStateAsync(roomId)).Get("m.room.name", "")!.Json, "name"));
        Assert.Contains(roomId, await store.GetJoinedRoomsAsync(Alice));

        var renamed = await fx.Room(roomId).SendAsync(new SendEventCommand(Alice, "DEV", null, "m.room.name", "", """{"name":"After"}"""));
        var left = await fx.Room(roomId).SetMembershipAsync(new MembershipCommand(Alice, Alice, MembershipAction.Leave, null));
        await fx.WaitAsync(1, left);
        Assert.Equal(renamed.EventId, (await store.GetCurrentStateAsync(roomId)).Get("m.room.name", "")!.EventId);
        Assert.DoesNotContain(roomId, await store.GetJoinedRoomsAsync(Alice));
    }

    [Fact]
    public async Task A_conflicting_write_from_elsewhere_fails_on_the_depth_index_and_the_grain_rebuilds_on_it()
    {
        var (roomId, _) = await CreateAsync(RoomClusterFixture.Create(Alice));
        var room = fx.Room(roomId);
        var first = await room.SendAsync(Message(Alice, "first"));
        var depth = (await fx.Store(0).GetMaxTopologicalAsync(roomId));

        // Another writer (a stray second activation) appends depth+1 behind this activation's back.
        var intruderId = "$intruder" + Identifiers.RandomString(8);
        var intruder = new RoomEventRow(intruderId, roomId, "m.room.message", null, Alice,
            DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), depth + 1,
            new JsonObject { ["event_id"] = intruderId, ["type"] = "m.room.message", ["room_id"] = roomId, ["sender"] = Alice, ["content"] = new JsonObject() }.ToJsonString());
        var writer = fx.Cluster.Silos[0].Grains.GetGrain<IStreamWriterGrain>(StreamNames.WriterKey(StreamNames.Events, fx.Cluster.Silos[0].Get<EventShards>().Current.WriterFor(roomId)));
        await writer.AppendAsync([RoomStreamRows.Event(intruder)]);

        // The same depth again must be refused by the database.
        await Assert.ThrowsAnyAsync<Exception>(() => writer.AppendAsync([RoomStreamRows.Event(intruder with { EventId = "$other" })]));

        var next = await fx.Room(roomId).SendAsync(Message(Alice, "after"));
        await fx.WaitAsync(0, next);
        var stored = await fx.Store(0).GetEventAsync(next.EventId!);
        Assert.Equal(depth + 2, stored!.Topological);
        Assert.Equal(intruder.EventId, Parse(stored.Json)["prev_events"]![0]!.GetValue<string>());
        Assert.NotEqual(first.EventId, next.EventId);

        await using var cmd = fx.Cluster.Database.CreateCommand("SELECT count(*) FROM events WHERE room_id = $1 GROUP BY topological HAVING count(*) > 1");
        cmd.Parameters.AddWithValue(roomId);
        Assert.Null(await cmd.ExecuteScalarAsync());
    }
}

internal static class JsonTestExtensions
{
    public static T Also<T>(this T value, Action<T> action)
    {
        action(value);
        return value;
    }
}

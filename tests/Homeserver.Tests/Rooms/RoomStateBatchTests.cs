using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Homeserver.Errors;
using Homeserver.Matrix;
using Homeserver.Rooms;
using Homeserver.Streams;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Rooms;

/// <summary>
/// State events and membership changes queued in a room while its previous write commits (issue 13): they share one
/// append, each checked on the state the one before it leaves, a rejected one fails alone, order is kept, and nothing
/// is answered before it has committed. A commit of the room is held open so that the writes behind it queue up.
/// </summary>
public sealed class RoomStateBatchTests(RoomClusterFixture fx) : IClassFixture<RoomClusterFixture>
{
    private const string Alice = "@alice:localhost";
    private const string Bob = "@bob:localhost";
    private const string Carol = "@carol:localhost";
    private const string Dave = "@dave:localhost";
    private const string Mallory = "@mallory:localhost";

    internal static SendEventCommand State(string sender, string type, JsonObject content) =>
        new(sender, "DEV", null, type, "", content.ToJsonString());

    internal static MembershipCommand Join(string user) => new(user, user, MembershipAction.Join, null);

    private static JsonObject Levels(params (string User, int Level)[] users)
    {
        var map = new JsonObject();
        foreach (var (user, level) in users) map[user] = level;
        return new JsonObject
        {
            ["users"] = map, ["users_default"] = 0, ["events"] = new JsonObject(), ["events_default"] = 0, ["state_default"] = 50,
            ["ban"] = 50, ["kick"] = 50, ["redact"] = 50, ["invite"] = 0,
        };
    }

    private async Task<string> NewRoomAsync(string preset = "public_chat")
    {
        var roomId = RoomClusterFixture.NewRoomId();
        await fx.Room(roomId).CreateAsync(RoomClusterFixture.Create(Alice, preset));
        return roomId;
    }

    /// <summary>What a call ended with: the event id, or the Matrix error's status and code.</summary>
    private static async Task<(string? EventId, int Status, string? ErrCode)> OutcomeAsync(Task<RoomWriteResult> call)
    {
        try { return ((await call).EventId, 200, null); }
        catch (MatrixException e) { return (null, e.Status, e.ErrCode); }
    }

    [Fact]
    public async Task A_rejected_state_event_in_a_batch_fails_alone_and_the_rest_commit_in_order()
    {
        var roomId = await NewRoomAsync();
        await using var gate = CommitGate.Install(fx.Cluster, roomId);
        var held = fx.Room(roomId).SendAsync(CommitGate.HoldingMessage(Alice));
        await gate.HeldAsync();

        // Queued one after another while the message's commit is held: they go out together once it is released.
        var calls = new List<Task<RoomWriteResult>>();
        foreach (var submit in new Func<Task<RoomWriteResult>>[]
                 {
                     () => fx.Room(roomId).SetMembershipAsync(Join(Bob)),
                     () => fx.Room(roomId).SendAsync(State(Mallory, "m.room.topic", new JsonObject { ["topic"] = "not a member" })),
                     () => fx.Room(roomId).SetMembershipAsync(Join(Carol)),
                     () => fx.Room(roomId).SendAsync(State(Alice, "m.room.topic", new JsonObject { ["topic"] = "batched" })),
                     () => fx.Room(roomId).SetMembershipAsync(Join(Dave)),
                 })
        {
            calls.Add(submit());
            await Task.Delay(50);
        }
        Assert.All(calls, c => Assert.False(c.IsCompleted, "nothing may be answered before its commit"));
        gate.Release();
        var heldId = (await held).EventId;
        var outcomes = await Task.WhenAll(calls.Select(OutcomeAsync));

        Assert.Equal((403, ErrorCodes.Forbidden), (outcomes[1].Status, outcomes[1].ErrCode));
        Assert.All(outcomes.Where((_, i) => i != 1), o => Assert.StartsWith("$", o.EventId));
        // The four went out in one append, not one each.
        Assert.Contains(4, gate.EventsPerCommit);

        var after = (await BatchTestDatabase.EventsAsync(fx.Cluster, roomId)).SkipWhile(e => e.EventId != heldId).Skip(1).ToList();
        Assert.Equal([("m.room.member", Bob), ("m.room.member", Carol), ("m.room.topic", ""), ("m.room.member", Dave)],
            after.Select(e => (e.Type, e.StateKey!)));
        Assert.Equal(outcomes.Where((_, i) => i != 1).Select(o => o.EventId), after.Select(e => e.EventId));
        await BatchTestDatabase.AssertUnbrokenChainAsync(fx.Cluster, roomId);

        var state = await fx.Store(0).GetCurrentStateAsync(roomId);
        Assert.Equal("join", state.Membership(Dave));
        Assert.Null(state.Membership(Mallory));
    }

    /// <summary>Power levels raised and lowered inside one batch: each event after them is authorised by the levels the
    /// batch has reached at that point, exactly as if the events had been sent one by one.</summary>
    [Fact]
    public async Task State_after_a_batch_equals_state_after_the_same_events_one_by_one()
    {
        Func<IRoomGrain, Task<RoomWriteResult>>[] sequence =
        [
            r => r.SendAsync(State(Bob, "m.room.topic", new JsonObject { ["topic"] = "too early" })),
            r => r.SendAsync(State(Alice, "m.room.power_levels", Levels((Alice, 100), (Bob, 50)))),
            r => r.SendAsync(State(Bob, "m.room.topic", new JsonObject { ["topic"] = "promoted" })),
            r => r.SendAsync(State(Alice, "m.room.power_levels", Levels((Alice, 100)))),
            r => r.SendAsync(State(Bob, "m.room.name", new JsonObject { ["name"] = "demoted" })),
            r => r.SendAsync(new SendEventCommand(Bob, "DEV", "still-talking", "m.room.message", null, """{"msgtype":"m.text","body":"hi"}""")),
            r => r.SetMembershipAsync(new MembershipCommand(Alice, Bob, MembershipAction.Kick, "bye")),
            r => r.SendAsync(State(Bob, "m.room.topic", new JsonObject { ["topic"] = "kicked" })),
        ];

        async Task<string> RoomWithBobAsync()
        {
            var roomId = await NewRoomAsync();
            await fx.Room(roomId).SetMembershipAsync(Join(Bob));
            return roomId;
        }

        var oneByOne = await RoomWithBobAsync();
        var sequential = new List<(string? EventId, int Status, string? ErrCode)>();
        foreach (var step in sequence) sequential.Add(await OutcomeAsync(step(fx.Room(oneByOne))));

        var batched = await RoomWithBobAsync();
        await using (var gate = CommitGate.Install(fx.Cluster, batched))
        {
            var held = fx.Room(batched).SendAsync(CommitGate.HoldingMessage(Alice));
            await gate.HeldAsync();
            var calls = new List<Task<(string? EventId, int Status, string? ErrCode)>>();
            foreach (var step in sequence)
            {
                calls.Add(OutcomeAsync(step(fx.Room(batched))));
                await Task.Delay(50);
            }
            gate.Release();
            await held;
            var outcomes = await Task.WhenAll(calls);

            Assert.Equal([403, 200, 200, 200, 403, 200, 200, 403], sequential.Select(o => o.Status));
            Assert.Equal(sequential.Select(o => (o.Status, o.ErrCode)), outcomes.Select(o => (o.Status, o.ErrCode)));
            // The writes went out in fewer appends than one each (how they split between appends depends on when each call
            // reached the room, e.g. [4, 1] on a fast machine); the outcomes and the state above are what must match.
            Assert.Contains(gate.EventsPerCommit, n => n >= 2);
        }

        Assert.Equal(await BatchTestDatabase.CurrentStateAsync(fx.Cluster, oneByOne), await BatchTestDatabase.CurrentStateAsync(fx.Cluster, batched));
        var grainState = await fx.Store(0).GetCurrentStateAsync(batched);
        Assert.Equal("leave", grainState.Membership(Bob));
        await BatchTestDatabase.AssertUnbrokenChainAsync(fx.Cluster, batched);
    }

    [Fact]
    public async Task Concurrent_joins_through_both_silos_all_land_once_with_the_right_membership_and_state()
    {
        var roomId = await NewRoomAsync();
        var users = Enumerable.Range(0, 40).Select(i => $"@joiner{i}:localhost").ToArray();
        await using var gate = CommitGate.Install(fx.Cluster, roomId);
        var held = fx.Room(roomId).SendAsync(CommitGate.HoldingMessage(Alice));
        await gate.HeldAsync();
        // Every user joins twice at once, through either silo: the second finds the first (even in the same batch).
        var joins = users.SelectMany((u, i) => new[] { fx.Room(roomId, i % 2).SetMembershipAsync(Join(u)), fx.Room(roomId, (i + 1) % 2).SetMembershipAsync(Join(u)) })
            .ToArray();
        await Task.Delay(200);
        Assert.All(joins, j => Assert.False(j.IsCompleted, "nothing may be answered before its commit"));
        gate.Release();
        await held;
        var results = await Task.WhenAll(joins);

        var events = await BatchTestDatabase.EventsAsync(fx.Cluster, roomId);
        var memberEvents = events.Where(e => e.Type == "m.room.member").ToList();
        Assert.Equal(users.Length + 1, memberEvents.Count);
        for (var i = 0; i < users.Length; i++)
        {
            Assert.Equal(results[2 * i].EventId, results[2 * i + 1].EventId);
            Assert.Equal(users[i], memberEvents.Single(e => e.EventId == results[2 * i].EventId).StateKey);
        }
        Assert.Contains(gate.EventsPerCommit, n => n > 1);

        await using (var cmd = fx.Cluster.Database.CreateCommand("SELECT count(*) FROM room_memberships WHERE room_id = $1 AND membership = 'join'"))
        {
            cmd.Parameters.AddWithValue(roomId);
            Assert.Equal((long)users.Length + 1, (long)(await cmd.ExecuteScalarAsync())!);
        }
        var state = await fx.Store(1).GetCurrentStateAsync(roomId);
        Assert.All(users, u => Assert.Equal("join", state.Membership(u)));
        await BatchTestDatabase.AssertUnbrokenChainAsync(fx.Cluster, roomId);

        // The grain's state agrees with the database's: a message from the last joiner is allowed, a stranger's is not.
        Assert.StartsWith("$", (await fx.Room(roomId, 1).SendAsync(new SendEventCommand(users[^1], "DEV", "hello", "m.room.message", null, """{"msgtype":"m.text","body":"hi"}"""))).EventId);
        await Assert.ThrowsAsync<MatrixException>(() => fx.Room(roomId).SendAsync(new SendEventCommand(Mallory, "DEV", "x", "m.room.message", null, "{}")));
    }

    /// <summary>A join repeated in the batch of the first one finds that first join in the batch's state: it is
    /// answered only when that state has committed.</summary>
    [Fact]
    public async Task A_join_repeated_within_its_batch_is_answered_only_after_the_commit()
    {
        var roomId = await NewRoomAsync();
        await using var gate = CommitGate.Install(fx.Cluster, roomId, holdEvery: true);
        var held = fx.Room(roomId).SendAsync(CommitGate.HoldingMessage(Alice));
        var first = await gate.NextHeldAsync();
        var join = fx.Room(roomId).SetMembershipAsync(Join(Bob));
        await Task.Delay(50);
        var again = fx.Room(roomId).SetMembershipAsync(Join(Bob));
        await Task.Delay(50);
        first.TrySetResult();
        await held;

        var batch = await gate.NextHeldAsync();
        await Task.Delay(200);
        Assert.False(again.IsCompleted, "the repeated join was answered from state that had not committed");
        Assert.False(join.IsCompleted);
        batch.TrySetResult();
        Assert.Equal((await join).EventId, (await again).EventId);
        Assert.Equal([1], gate.EventsPerCommit);
    }

    [Fact]
    public async Task A_redaction_retried_while_it_is_queued_gives_one_event()
    {
        var roomId = await NewRoomAsync();
        var target = await fx.Room(roomId).SendAsync(new SendEventCommand(Alice, "DEV", "target", "m.room.message", null, """{"msgtype":"m.text","body":"oops"}"""));
        await using var gate = CommitGate.Install(fx.Cluster, roomId);
        var held = fx.Room(roomId).SendAsync(CommitGate.HoldingMessage(Alice));
        await gate.HeldAsync();
        var redactions = Enumerable.Range(0, 6).Select(i => fx.Room(roomId, i % 2).RedactAsync(new RedactCommand(Alice, "DEV", "redact-once", target.EventId!, null)))
            .Append(fx.Room(roomId).SetMembershipAsync(Join(Bob)))
            .ToArray();
        await Task.Delay(200);
        gate.Release();
        await held;
        var results = await Task.WhenAll(redactions);

        Assert.Single(results.Take(6).Select(r => r.EventId).Distinct());
        var events = await BatchTestDatabase.EventsAsync(fx.Cluster, roomId);
        Assert.Single(events, e => e.Type == "m.room.redaction");
        await BatchTestDatabase.AssertUnbrokenChainAsync(fx.Cluster, roomId);
    }
}

/// <summary>The same room writes with <see cref="RoomOptions.BatchStateWrites"/> off: each state write commits alone.</summary>
public sealed class UnbatchedStateWritesTests(UnbatchedStateWritesTests.Fixture fx) : IClassFixture<UnbatchedStateWritesTests.Fixture>
{
    public sealed class Fixture : TwoSiloCluster
    {
        protected override IDictionary<string, string?> Settings => new Dictionary<string, string?> { ["Homeserver:Rooms:BatchStateWrites"] = "false" };
    }

    [Fact]
    public async Task Joins_queued_behind_a_commit_go_out_one_append_each()
    {
        var roomId = RoomClusterFixture.NewRoomId();
        var room = fx.A.Grains.GetGrain<IRoomGrain>(roomId);
        await room.CreateAsync(RoomClusterFixture.Create("@alice:localhost", "public_chat"));
        await using var gate = CommitGate.Install(fx.Cluster, roomId);
        var held = room.SendAsync(CommitGate.HoldingMessage("@alice:localhost"));
        await gate.HeldAsync();
        var joins = Enumerable.Range(0, 5).Select(i => room.SetMembershipAsync(RoomStateBatchTests.Join($"@one{i}:localhost"))).ToArray();
        await Task.Delay(200);
        gate.Release();
        await held;
        await Task.WhenAll(joins);
        Assert.All(gate.EventsPerCommit, n => Assert.Equal(1, n));
        Assert.Equal(5, gate.EventsPerCommit.Count);
        await BatchTestDatabase.AssertUnbrokenChainAsync(fx.Cluster, roomId);
    }
}

/// <summary>
/// Holds the events writer's commits of one room (the marked message's, or with <c>holdEvery</c> each one) until
/// released, and counts the room's events in every other commit (the writers' test hook, on every silo).
/// </summary>
internal sealed class CommitGate : IAsyncDisposable
{
    public const string Marker = "hold-this-commit";
    private readonly HomeserverTestCluster _cluster;
    private readonly System.Threading.Channels.Channel<TaskCompletionSource> _held = System.Threading.Channels.Channel.CreateUnbounded<TaskCompletionSource>();
    private readonly TaskCompletionSource _releaseAll = new(TaskCreationOptions.RunContinuationsAsynchronously);
    public ConcurrentQueue<int> EventsPerCommit { get; } = new();

    private CommitGate(HomeserverTestCluster cluster) => _cluster = cluster;

    public static SendEventCommand HoldingMessage(string sender) =>
        new(sender, "DEV", Guid.NewGuid().ToString("N"), "m.room.message", null, $$"""{"msgtype":"m.text","body":"{{Marker}}"}""");

    public static CommitGate Install(HomeserverTestCluster cluster, string roomId, bool holdEvery = false)
    {
        var gate = new CommitGate(cluster);
        foreach (var silo in cluster.Silos)
            silo.Get<StreamTestHooks>().BeforeCommit = async (stream, _, entries) =>
            {
                if (stream != StreamNames.Events) return;
                var mine = entries.Where(e => e.Kind == RoomStreamRows.EventKind && e.Key == roomId).ToList();
                if (mine.Count == 0) return;
                var marked = mine.Any(e => e.Payload.Contains(Marker));
                if (!marked) gate.EventsPerCommit.Enqueue(mine.Count);
                if (gate._releaseAll.Task.IsCompleted || !(marked || holdEvery)) return;
                var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                gate._held.Writer.TryWrite(release);
                await Task.WhenAny(release.Task, gate._releaseAll.Task);
            };
        return gate;
    }

    /// <summary>Waits for the next commit held; completing what it returns lets that commit go.</summary>
    public async Task<TaskCompletionSource> NextHeldAsync() =>
        await _held.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));

    public async Task HeldAsync() => await NextHeldAsync();

    /// <summary>Lets every held commit go, and all later ones.</summary>
    public void Release() => _releaseAll.TrySetResult();

    public ValueTask DisposeAsync()
    {
        Release();
        foreach (var silo in _cluster.Silos) silo.Get<StreamTestHooks>().BeforeCommit = null;
        return ValueTask.CompletedTask;
    }
}

internal static class BatchTestDatabase
{
    public sealed record StoredEvent(long Topological, string EventId, string Type, string? StateKey, JsonObject Json);

    public static async Task<List<StoredEvent>> EventsAsync(HomeserverTestCluster cluster, string roomId)
    {
        await using var cmd = cluster.Database.CreateCommand("SELECT topological, event_id, type, state_key, json FROM events WHERE room_id = $1 ORDER BY topological");
        cmd.Parameters.AddWithValue(roomId);
        var rows = new List<StoredEvent>();
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync())
            rows.Add(new StoredEvent(reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.IsDBNull(3) ? null : reader.GetString(3),
                (JsonObject)JsonNode.Parse(reader.GetString(4))!));
        return rows;
    }

    /// <summary>Every event's depth is one more than the previous and its prev_events is that previous event.</summary>
    public static async Task AssertUnbrokenChainAsync(HomeserverTestCluster cluster, string roomId)
    {
        var rows = await EventsAsync(cluster, roomId);
        for (var i = 0; i < rows.Count; i++)
        {
            Assert.Equal(i + 1, rows[i].Topological);
            if (i == 0) continue;
            Assert.Equal([rows[i - 1].EventId], rows[i].Json["prev_events"]!.AsArray().Select(p => p!.GetValue<string>()).ToList());
        }
    }

    /// <summary>The room's current state as (type, state key) → sender and canonical content (event ids differ between
    /// rooms). Each row's membership column is checked against its event: a member event's membership, null for other
    /// state (what loading the state into a cache reads instead of the event's JSON).</summary>
    public static async Task<SortedDictionary<string, string>> CurrentStateAsync(HomeserverTestCluster cluster, string roomId)
    {
        await using var cmd = cluster.Database.CreateCommand(
            "SELECT s.type, s.state_key, e.json, s.membership FROM room_current_state s JOIN events e ON e.event_id = s.event_id WHERE s.room_id = $1");
        cmd.Parameters.AddWithValue(roomId);
        var state = new SortedDictionary<string, string>(StringComparer.Ordinal);
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            var ev = (JsonObject)JsonNode.Parse(reader.GetString(2))!;
            var expected = reader.GetString(0) == "m.room.member" ? ev["content"]!["membership"]!.GetValue<string>() : null;
            Assert.Equal(expected, reader.IsDBNull(3) ? null : reader.GetString(3));
            state[$"{reader.GetString(0)}|{reader.GetString(1)}"] = $"{ev["sender"]} {CanonicalJson.Encode((JsonObject)ev["content"]!)}";
        }
        return state;
    }
}

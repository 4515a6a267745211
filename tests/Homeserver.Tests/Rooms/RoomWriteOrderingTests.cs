using System.Text.Json.Nodes;
using Homeserver.Rooms;
using Homeserver.Streams;

namespace Homeserver.Tests.Rooms;

/// <summary>
/// Many concurrent sends to one room, through both silos, some failing: the room's history must stay one unbroken
/// chain (depth and prev_events), whatever was acknowledged must be stored, and a transaction id must give one event.
/// </summary>
public sealed class RoomWriteOrderingTests(RoomClusterFixture fx) : IClassFixture<RoomClusterFixture>
{
    private const string Alice = "@alice:localhost";

    private async Task<string> NewRoomAsync()
    {
        var roomId = RoomClusterFixture.NewRoomId();
        await fx.Room(roomId).CreateAsync(RoomClusterFixture.Create(Alice));
        return roomId;
    }

    private static SendEventCommand Message(string body, string? txn = null) =>
        new(Alice, "DEV", txn ?? Guid.NewGuid().ToString("N"), "m.room.message", null, $"{{\"msgtype\":\"m.text\",\"body\":\"{body}\"}}");

    /// <summary>Every event's depth is one more than the previous and its prev_events is that previous event.</summary>
    private async Task AssertUnbrokenChainAsync(string roomId)
    {
        await using var cmd = fx.Cluster.Database.CreateCommand("SELECT topological, event_id, json FROM events WHERE room_id = $1 ORDER BY topological");
        cmd.Parameters.AddWithValue(roomId);
        var rows = new List<(long Topological, string EventId, JsonObject Json)>();
        await using (var reader = await cmd.ExecuteReaderAsync())
            while (await reader.ReadAsync()) rows.Add((reader.GetInt64(0), reader.GetString(1), (JsonObject)JsonNode.Parse(reader.GetString(2))!));
        for (var i = 0; i < rows.Count; i++)
        {
            Assert.Equal(i + 1, rows[i].Topological);
            if (i == 0) continue;
            var prev = rows[i].Json["prev_events"]!.AsArray().Select(p => p!.GetValue<string>()).ToList();
            Assert.Equal([rows[i - 1].EventId], prev);
        }
    }

    [Fact]
    public async Task Concurrent_sends_through_both_silos_form_one_unbroken_chain()
    {
        var roomId = await NewRoomAsync();
        var results = await Task.WhenAll(Enumerable.Range(0, 60).Select(i => fx.Room(roomId, i % 2).SendAsync(Message($"m{i}"))));
        Assert.Equal(60, results.Select(r => r.EventId).Distinct().Count());
        await AssertUnbrokenChainAsync(roomId);
    }

    [Fact]
    public async Task A_retried_transaction_in_flight_gives_the_same_event()
    {
        var roomId = await NewRoomAsync();
        var sends = await Task.WhenAll(Enumerable.Range(0, 10).Select(i => fx.Room(roomId, i % 2).SendAsync(Message("once", "txn-dup"))));
        Assert.Single(sends.Select(s => s.EventId).Distinct());
        await using var cmd = fx.Cluster.Database.CreateCommand("SELECT count(*) FROM events WHERE room_id = $1 AND txn_id = 'txn-dup'");
        cmd.Parameters.AddWithValue(roomId);
        Assert.Equal(1L, (long)(await cmd.ExecuteScalarAsync())!);
    }

    [Fact]
    public async Task A_failed_send_among_concurrent_ones_leaves_no_hole()
    {
        var roomId = await NewRoomAsync();
        var failOnce = 1;
        foreach (var silo in fx.Cluster.Silos)
            silo.Get<StreamTestHooks>().BeforeCommit = (stream, _, entries) =>
                stream == StreamNames.Events && entries.Any(e => e.Payload.Contains("poison")) && Interlocked.Exchange(ref failOnce, 0) == 1
                    ? Task.FromException(new InvalidOperationException("injected failure"))
                    : Task.CompletedTask;
        try
        {
            var sends = Enumerable.Range(0, 30)
                .Select(i => fx.Room(roomId, 0).SendAsync(Message(i == 10 ? "poison" : $"m{i}")))
                .ToList();
            var outcomes = await Task.WhenAll(sends.Select(async t =>
            {
                try { return (await t).EventId; }
                catch (Errors.MatrixException) { return null; }
            }));
            Assert.True(outcomes.Any(o => o is null), "the poisoned send must fail");
            // The sends that shared the failed transaction fail with it (group commit).
            Assert.Null(outcomes[10]);
            await AssertUnbrokenChainAsync(roomId);

            // Whatever was acknowledged is stored.
            await using var cmd = fx.Cluster.Database.CreateCommand("SELECT event_id FROM events WHERE room_id = $1");
            cmd.Parameters.AddWithValue(roomId);
            var stored = new HashSet<string>();
            await using (var reader = await cmd.ExecuteReaderAsync())
                while (await reader.ReadAsync()) stored.Add(reader.GetString(0));
            Assert.All(outcomes.Where(o => o is not null), id => Assert.Contains(id!, stored));

            // The room keeps working afterwards.
            var after = await Task.WhenAll(Enumerable.Range(0, 10).Select(i => fx.Room(roomId, i % 2).SendAsync(Message($"after{i}"))));
            Assert.All(after, a => Assert.StartsWith("$", a.EventId));
            await AssertUnbrokenChainAsync(roomId);
        }
        finally
        {
            foreach (var silo in fx.Cluster.Silos) silo.Get<StreamTestHooks>().BeforeCommit = null;
        }
    }

    [Fact]
    public async Task A_forbidden_send_queued_among_others_fails_alone()
    {
        var roomId = await NewRoomAsync();
        var sends = Enumerable.Range(0, 40)
            .Select(i => fx.Room(roomId, i % 2).SendAsync(i % 10 == 5
                ? Message($"intruder{i}") with { Sender = "@mallory:localhost" }
                : Message($"m{i}")))
            .ToList();
        var outcomes = await Task.WhenAll(sends.Select(async t =>
        {
            try { return ((await t).EventId, (int?)null); }
            catch (Errors.MatrixException e) { return (null, e.Status); }
        }));
        for (var i = 0; i < outcomes.Length; i++)
        {
            if (i % 10 == 5) Assert.Equal(403, outcomes[i].Item2);
            else Assert.StartsWith("$", outcomes[i].EventId);
        }
        Assert.Equal(36, outcomes.Select(o => o.EventId).Where(e => e is not null).Distinct().Count());
        await AssertUnbrokenChainAsync(roomId);
    }
}

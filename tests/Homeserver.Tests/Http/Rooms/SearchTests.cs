using System.Text.Json.Nodes;
using Homeserver.Tests.Http.Accounts;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.Rooms;

/// <summary>
/// Server-side search (spec "Server Side Search", <c>room_events</c>): ranking and recency, keys and filters, paging,
/// context and groupings, and visibility: nobody finds what they may not read, and a redacted message is found by
/// nobody.
/// </summary>
public sealed class SearchTests(TwoSiloCluster fixture) : IClassFixture<TwoSiloCluster>
{
    private const string Search = $"{MatrixPaths.V3}/search";

    private static JsonObject Query(string term, JsonObject? extra = null)
    {
        var criteria = new JsonObject { ["search_term"] = term };
        foreach (var (k, v) in extra ?? []) criteria[k] = v?.DeepClone();
        return new JsonObject { ["search_categories"] = new JsonObject { ["room_events"] = criteria } };
    }

    private static JsonNode RoomEvents(MatrixResponse r) => r.EnsureSuccess()["search_categories"]["room_events"]!;

    private static List<string> Bodies(JsonNode roomEvents) =>
        roomEvents["results"]!.AsArray().Select(r => r!["result"]!["content"]!["body"]!.GetValue<string>()).ToList();

    /// <summary>A word no other test's messages contain, so each test finds only its own.</summary>
    private static string Word(string prefix) => prefix + Guid.NewGuid().ToString("N")[..8];

    [Fact]
    public async Task Results_rank_by_relevance_or_recency_on_either_silo()
    {
        var alice = await fixture.UserAsync("search-rank");
        var roomId = await alice.CreateRoomAsync();
        var fox = Word("fox");
        await alice.SendTextAsync(roomId, $"a {fox} {fox} {fox} runs past a {fox}");
        await alice.SendTextAsync(roomId, $"one {fox} among many other words that dilute the rank of this message a lot");
        await alice.SendTextAsync(roomId, "nothing to find here");
        await CrossSilo.WaitForAsync(fixture.A, fixture.B);

        var ranked = RoomEvents(await alice.On(fixture.B).PostAsync(Search, Query(fox)));
        Assert.Equal(2, ranked["count"]!.GetValue<long>());
        Assert.StartsWith($"a {fox}", Bodies(ranked)[0]);
        Assert.True(ranked["results"]![0]!["rank"]!.GetValue<double>() > ranked["results"]![1]!["rank"]!.GetValue<double>());
        Assert.Contains(fox, ranked["highlights"]!.AsArray().Select(h => h!.GetValue<string>()));

        var recent = RoomEvents(await alice.PostAsync(Search, Query(fox, new JsonObject { ["order_by"] = "recent" })));
        Assert.StartsWith("one ", Bodies(recent)[0]);
        Assert.Null(recent["next_batch"]);
    }

    [Fact]
    public async Task Keys_and_filters_narrow_what_is_searched()
    {
        var alice = await fixture.UserAsync("search-filter");
        var bob = await fixture.UserAsync("search-filter-bob");
        var word = Word("topic");
        var first = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat", ["name"] = $"the {word} room" });
        var second = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        await bob.JoinAsync(first);
        await bob.JoinAsync(second);
        await alice.SendTextAsync(first, $"alice on {word}");
        await bob.SendTextAsync(first, $"bob on {word}");
        await alice.SendTextAsync(second, $"alice elsewhere on {word}");

        var names = RoomEvents(await bob.PostAsync(Search, Query(word, new JsonObject { ["keys"] = new JsonArray("content.name") })));
        var name = Assert.Single(names["results"]!.AsArray())!;
        Assert.Equal("m.room.name", name["result"]!["type"]!.GetValue<string>());

        var bodiesOnly = new JsonArray("content.body");
        var inFirst = RoomEvents(await bob.PostAsync(Search, Query(word, new JsonObject
        {
            ["keys"] = bodiesOnly.DeepClone(), ["filter"] = new JsonObject { ["rooms"] = new JsonArray(first) },
        })));
        Assert.Equal([$"bob on {word}", $"alice on {word}"], Bodies(inFirst).OrderBy(b => b).Reverse().ToList());
        var fromAlice = RoomEvents(await bob.PostAsync(Search, Query(word, new JsonObject
        {
            ["keys"] = bodiesOnly.DeepClone(), ["filter"] = new JsonObject { ["senders"] = new JsonArray(alice.UserId) },
        })));
        Assert.Equal(2, fromAlice["results"]!.AsArray().Count);
        var notTheOtherRoom = RoomEvents(await bob.PostAsync(Search, Query(word, new JsonObject
        {
            ["keys"] = bodiesOnly.DeepClone(), ["filter"] = new JsonObject { ["not_rooms"] = new JsonArray(second), ["not_senders"] = new JsonArray(bob.UserId) },
        })));
        Assert.Equal([$"alice on {word}"], Bodies(notTheOtherRoom));
    }

    [Fact]
    public async Task Nobody_finds_what_they_may_not_read()
    {
        var alice = await fixture.UserAsync("search-vis");
        var outsider = await fixture.UserAsync("search-vis-out");
        var latecomer = await fixture.UserAsync("search-vis-late");
        var word = Word("secret");
        var roomId = await alice.CreateRoomAsync(new JsonObject
        {
            ["preset"] = "public_chat",
            ["initial_state"] = new JsonArray(new JsonObject
            {
                ["type"] = "m.room.history_visibility", ["state_key"] = "", ["content"] = new JsonObject { ["history_visibility"] = "joined" },
            }),
        });
        await alice.SendTextAsync(roomId, $"before the join: {word}");
        var redacted = await alice.SendTextAsync(roomId, $"to be redacted: {word}");
        (await alice.PutAsync($"{MatrixPaths.Room(roomId)}/redact/{MatrixTestClient.Escape(redacted)}/{Guid.NewGuid():N}", new JsonObject())).EnsureSuccess();
        await latecomer.JoinAsync(roomId);
        await alice.SendTextAsync(roomId, $"after the join: {word}");

        Assert.Empty(Bodies(RoomEvents(await outsider.PostAsync(Search, Query(word)))));
        Assert.Equal([$"after the join: {word}"], Bodies(RoomEvents(await latecomer.PostAsync(Search, Query(word)))));
        Assert.Equal([$"after the join: {word}", $"before the join: {word}"],
            Bodies(RoomEvents(await alice.PostAsync(Search, Query(word, new JsonObject { ["order_by"] = "recent" })))));
    }

    [Fact]
    public async Task Pages_follow_next_batch_and_results_carry_context_and_groups()
    {
        var alice = await fixture.UserAsync("search-page");
        (await alice.PutAsync($"{MatrixPaths.V3}/profile/{MatrixTestClient.Escape(alice.UserId)}/displayname",
            new JsonObject { ["displayname"] = "Alice Searcher" })).EnsureSuccess();
        var roomId = await alice.CreateRoomAsync();
        var word = Word("page");
        for (var i = 0; i < 5; i++)
        {
            await alice.SendTextAsync(roomId, $"filler {i}");
            await alice.SendTextAsync(roomId, $"{word} number {i}");
        }
        var criteria = new JsonObject
        {
            ["order_by"] = "recent",
            ["filter"] = new JsonObject { ["limit"] = 2 },
            ["event_context"] = new JsonObject { ["before_limit"] = 1, ["after_limit"] = 1, ["include_profile"] = true },
            ["groupings"] = new JsonObject { ["group_by"] = new JsonArray(new JsonObject { ["key"] = "room_id" }) },
        };
        var seen = new List<string>();
        string? next = null;
        for (var page = 0; page < 5; page++)
        {
            var path = next is null ? Search : $"{Search}?next_batch={Uri.EscapeDataString(next)}";
            var events = RoomEvents(await alice.PostAsync(path, Query(word, criteria)));
            seen.AddRange(Bodies(events));
            var firstResult = events["results"]![0]!;
            Assert.StartsWith("filler", firstResult["context"]!["events_before"]![0]!["content"]!["body"]!.GetValue<string>());
            Assert.Equal("Alice Searcher", firstResult["context"]!["profile_info"]![alice.UserId]!["displayname"]!.GetValue<string>());
            Assert.Equal(events["results"]!.AsArray().Count, events["groups"]!["room_id"]![roomId]!["results"]!.AsArray().Count);
            next = events["next_batch"]?.GetValue<string>();
            if (next is null) break;
        }
        Assert.Equal(Enumerable.Range(0, 5).Reverse().Select(i => $"{word} number {i}"), seen);
    }

    [Fact]
    public async Task Bad_queries_get_matrix_errors_and_hostile_terms_are_just_words()
    {
        var alice = await fixture.UserAsync("search-bad");
        await alice.CreateRoomAsync();
        var missing = await alice.PostAsync(Search, new JsonObject { ["search_categories"] = new JsonObject { ["room_events"] = new JsonObject() } });
        Assert.Equal((400, "M_MISSING_PARAM"), (missing.StatusCode, missing.ErrCode));
        var noCategories = await alice.PostAsync(Search, new JsonObject());
        Assert.Equal(400, noCategories.StatusCode);
        var badOrder = await alice.PostAsync(Search, Query("x", new JsonObject { ["order_by"] = "random" }));
        Assert.Equal((400, "M_INVALID_PARAM"), (badOrder.StatusCode, badOrder.ErrCode));
        var badKey = await alice.PostAsync(Search, Query("x", new JsonObject { ["keys"] = new JsonArray("content.secret") }));
        Assert.Equal((400, "M_INVALID_PARAM"), (badKey.StatusCode, badKey.ErrCode));
        var badBatch = await alice.PostAsync($"{Search}?next_batch=zzz", Query("x"));
        Assert.Equal(400, badBatch.StatusCode);
        foreach (var hostile in new[] { "\"((( & | ! :*", "-", "or or or", "'; DROP TABLE events; --", new string('x', 900) })
            RoomEvents(await alice.PostAsync(Search, Query(hostile)));
        var anonymous = await fixture.A.Http.PostJsonAsync(Search, Query("x"));
        Assert.Equal(401, anonymous.StatusCode);
        // A category this server does not search is left out of the answer.
        var groups = (await alice.PostAsync(Search, new JsonObject { ["search_categories"] = new JsonObject() })).EnsureSuccess();
        Assert.Empty(groups["search_categories"].AsObject());
    }
}

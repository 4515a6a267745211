using System.Text.Json.Nodes;
using Homeserver.Streams;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.Operator;

/// <summary>A 2-silo cluster with one admin and writer rebalancing on (1 s), so a writer that is moved away from its
/// hash home would go back there unless its pin holds it.</summary>
public sealed class OperatorCluster : TwoSiloCluster
{
    public const string AdminLocalpart = "operator-admin";

    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?>
    {
        ["Homeserver:AdminUsers:0"] = $"@{AdminLocalpart}:localhost",
        ["Homeserver:WriterRebalanceDelay"] = "00:00:01",
    };

    private MatrixTestClient? _admin;

    public async Task<MatrixTestClient> AdminAsync() =>
        _admin ??= await MatrixTestClient.RegisterAsync(A, $"{AdminLocalpart}");
}

/// <summary>
/// The homeserver's own admin calls under <c>/_homeserver/admin/v1</c>: replication status, the cluster's silos and
/// front ends, and moving a stream writer to a named silo; non-admins 403, bad input 400/404 Matrix errors.
/// </summary>
public sealed class OperatorAdminTests(OperatorCluster fixture) : IClassFixture<OperatorCluster>
{
    private const string Admin = "/_homeserver/admin/v1";

    private static string Move(string stream, object writer) => $"{Admin}/stream_writers/{stream}/{writer}/move";
    private static string Pin(string stream, object writer) => $"{Admin}/stream_writers/{stream}/{writer}/pin";

    [Fact]
    public async Task Replication_shows_every_writer_and_both_silos_readers_with_their_lag_and_caches()
    {
        var admin = await fixture.AdminAsync();
        var room = await admin.CreateRoomAsync();
        await admin.SendTextAsync(room, "counted");
        await fixture.SettleAsync();

        var status = (await admin.On(fixture.B).GetAsync($"{Admin}/replication")).EnsureSuccess();

        var writers = status["writers"].AsArray();
        var expectedWriters = StreamNames.All.Count - 1 + fixture.A.Get<EventShards>().Current.WriterCount;
        Assert.Equal(expectedWriters, writers.Count);
        var silos = new[] { fixture.A, fixture.B }.Select(s => s.Get<ReaderHost>().Name).ToHashSet();
        Assert.All(writers, w =>
        {
            Assert.Contains(w!["silo"]!.GetValue<string>(), silos);
            Assert.True(w["epoch"]!.GetValue<long>() >= 1);
        });
        Assert.Contains(writers, w => w!["stream"]!.GetValue<string>() == StreamNames.Events && w["position"]!.GetValue<long>() > 0);

        var readers = status["readers"].AsArray();
        Assert.Equal(silos.Order(), readers.Select(r => r!["name"]!.GetValue<string>()).Order());
        foreach (var reader in readers)
        {
            var streams = reader!["streams"]!.AsObject();
            Assert.Equal(StreamNames.All.Order(), streams.Select(s => s.Key).Order());
            foreach (var w in writers)
            {
                var at = streams[w!["stream"]!.GetValue<string>()]![w["writer"]!.GetValue<int>().ToString()]!;
                Assert.True(at["lag"]!.GetValue<long>() >= 0);
                Assert.Equal(Math.Max(0, w["position"]!.GetValue<long>() - at["position"]!.GetValue<long>()), at["lag"]!.GetValue<long>());
                // Milliseconds behind the newest position the reader was told of: zero whenever it has caught up.
                var lagMs = at["lag_ms"]!.GetValue<double>();
                Assert.True(lagMs >= 0 && lagMs < 60_000, $"lag_ms {lagMs}");
            }
            Assert.NotEmpty(reader["caches"]!.AsArray());
            Assert.All(reader["caches"]!.AsArray(), c => Assert.True(c!["hits"]!.GetValue<long>() >= 0));
        }
    }

    [Fact]
    public async Task Cluster_lists_both_silos_and_both_front_ends()
    {
        var admin = await fixture.AdminAsync();
        var silos = new[] { fixture.A, fixture.B };
        JsonNode cluster = null!;
        // Each process writes its front_ends row once it listens: give the second a moment.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        do
        {
            cluster = (await admin.GetAsync($"{Admin}/cluster")).EnsureSuccess().Body!;
            if (cluster["front_ends"]!.AsArray().Count >= 2) break;
            await Task.Delay(200);
        } while (DateTime.UtcNow < deadline);

        var active = cluster["silos"]!.AsArray().Where(s => s!["status"]!.GetValue<string>() == "Active").ToList();
        Assert.Equal(silos.Select(s => s.Get<ReaderHost>().Name).Order(), active.Select(s => s!["address"]!.GetValue<string>()).Order());
        Assert.All(active, s => Assert.Equal("combined", s!["role"]!.GetValue<string>()));

        var frontEnds = cluster["front_ends"]!.AsArray();
        Assert.Equal(2, frontEnds.Count);
        foreach (var silo in silos)
        {
            var entry = Assert.Single(frontEnds, f => f!["silo"]?.GetValue<string>() == silo.Get<ReaderHost>().Name);
            Assert.Equal("combined", entry!["role"]!.GetValue<string>());
            Assert.Equal("up", entry["status"]!.GetValue<string>());
            Assert.Contains(silo.BaseUrl, entry["urls"]!.AsArray().Select(u => u!.GetValue<string>()));
        }
    }

    [Fact]
    public async Task Moving_a_writer_puts_it_on_the_named_silo_where_it_stays_and_sends_through_it_are_seen()
    {
        var admin = await fixture.AdminAsync();
        var bob = await fixture.UserAsync("operator-bob", fixture.B);
        var room = await admin.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        await bob.JoinAsync(room);
        var before = await admin.SendTextAsync(room, "before the move");

        var writer = fixture.A.Get<EventShards>().Current.WriterFor(room);
        var grain = fixture.A.Grains.GetGrain<IStreamWriterGrain>(StreamNames.WriterKey(StreamNames.Events, writer));
        var from = (await grain.GetPositionAsync()).Silo;
        var target = new[] { fixture.A, fixture.B }.Select(s => s.Get<ReaderHost>().Silo!).First(s => s.ToString() != from);

        // Named by host:port, as an operator would type it.
        var moved = (await admin.PostAsync(Move(StreamNames.Events, writer), new JsonObject { ["silo"] = target.Endpoint.ToString() })).EnsureSuccess();
        Assert.Equal(from, moved["from"].GetValue<string>());
        Assert.Equal(target.ToString(), moved["silo"].GetValue<string>());
        Assert.Equal(target.ToString(), (await grain.GetPositionAsync()).Silo);

        var after = await admin.SendTextAsync(room, "after the move");
        var sync = await bob.SyncAsync();
        var seen = sync.RoomEvents(room, "timeline").Select(e => e!["event_id"]!.GetValue<string>()).ToList();
        Assert.Contains(before, seen);
        Assert.Contains(after, seen);

        // Rebalancing (every 250 ms here, after 1 s) would send an unpinned writer back to its hash home.
        await Task.Delay(TimeSpan.FromSeconds(2.5));
        Assert.Equal(target.ToString(), (await grain.GetPositionAsync()).Silo);
        await using var cmd = fixture.Cluster.Database.CreateCommand("SELECT pinned_to FROM stream_writers WHERE stream = 'events' AND writer = $1");
        cmd.Parameters.AddWithValue(writer);
        Assert.Equal(target.Endpoint.ToString(), await cmd.ExecuteScalarAsync());
        var pinned = (await admin.GetAsync($"{Admin}/replication")).EnsureSuccess()["writers"].AsArray()
            .Single(w => w!["stream"]!.GetValue<string>() == StreamNames.Events && w["writer"]!.GetValue<int>() == writer);
        Assert.Equal(target.Endpoint.ToString(), pinned!["pinned_to"]!.GetValue<string>());

        // Unpinned, it is a writer like any other again: rebalancing sends it back to its hash home.
        var unpinned = (await admin.DeleteAsync(Pin(StreamNames.Events, writer))).EnsureSuccess();
        Assert.Equal(target.Endpoint.ToString(), unpinned["unpinned_from"].GetValue<string>());
        Assert.Equal(DBNull.Value, await cmd.ExecuteScalarAsync());
        var silos = new[] { fixture.A, fixture.B }.Select(s => s.Get<ReaderHost>().Silo!).ToList();
        var home = StreamWriterHome.Choose(StreamNames.WriterKey(StreamNames.Events, writer), silos);
        Assert.NotEqual(target, home);
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while ((await grain.GetPositionAsync()).Silo != home.ToString() && DateTime.UtcNow < deadline) await Task.Delay(100);
        Assert.Equal(home.ToString(), (await grain.GetPositionAsync()).Silo);
        var again = (await admin.DeleteAsync(Pin(StreamNames.Events, writer))).EnsureSuccess();
        Assert.True(again.Body!.AsObject().TryGetPropertyValue("unpinned_from", out var none) && none is null, again.Text);
        var last = await admin.SendTextAsync(room, "back home");
        Assert.Contains(last, (await bob.SyncAsync()).RoomEvents(room, "timeline").Select(e => e!["event_id"]!.GetValue<string>()));
    }

    [Fact]
    public async Task Non_admins_are_refused_and_no_token_is_401()
    {
        var alice = await fixture.UserAsync("operator-alice");
        foreach (var r in new[]
                 {
                     await alice.GetAsync($"{Admin}/replication"),
                     await alice.GetAsync($"{Admin}/cluster"),
                     await alice.PostAsync(Move(StreamNames.Typing, 0), new JsonObject { ["silo"] = fixture.A.Get<ReaderHost>().Name }),
                     await alice.DeleteAsync(Pin(StreamNames.Typing, 0)),
                 })
        {
            Assert.Equal(403, r.StatusCode);
            Assert.Equal("M_FORBIDDEN", r.ErrCode);
        }
        var anonymous = await fixture.A.Http.GetJsonAsync($"{Admin}/cluster");
        Assert.Equal(401, anonymous.StatusCode);
        Assert.Equal("M_MISSING_TOKEN", anonymous.ErrCode);
    }

    [Fact]
    public async Task Moves_and_unpins_of_unknown_streams_writers_or_silos_are_matrix_errors()
    {
        var admin = await fixture.AdminAsync();
        var silo = new JsonObject { ["silo"] = fixture.B.Get<ReaderHost>().Name };
        var cases = new (string Path, JsonObject Body, int Status, string ErrCode)[]
        {
            (Move("nonsense", 0), silo, 404, "M_NOT_FOUND"),
            (Move(StreamNames.Typing, 1), silo, 404, "M_NOT_FOUND"),
            (Move(StreamNames.Events, 64), silo, 404, "M_NOT_FOUND"),
            (Move(StreamNames.Typing, "first"), silo, 400, "M_INVALID_PARAM"),
            (Move(StreamNames.Typing, -1), silo, 400, "M_INVALID_PARAM"),
            (Move(StreamNames.Typing, 0), new JsonObject { ["silo"] = "127.0.0.1:1" }, 404, "M_NOT_FOUND"),
            (Move(StreamNames.Typing, 0), new JsonObject(), 400, "M_MISSING_PARAM"),
            (Move(StreamNames.Typing, 0), new JsonObject { ["silo"] = 5 }, 400, "M_MISSING_PARAM"),
        };
        foreach (var (path, body, status, errCode) in cases)
        {
            var r = await admin.PostAsync(path, body);
            Assert.True(status == r.StatusCode && errCode == r.ErrCode, $"{path} {body.ToJsonString()}: {r.StatusCode} {r.Text}");
        }
        foreach (var (path, status, errCode) in new (string, int, string)[]
                 {
                     (Pin("nonsense", 0), 404, "M_NOT_FOUND"),
                     (Pin(StreamNames.Typing, 1), 404, "M_NOT_FOUND"),
                     (Pin(StreamNames.Typing, "first"), 400, "M_INVALID_PARAM"),
                 })
        {
            var r = await admin.DeleteAsync(path);
            Assert.True(status == r.StatusCode && errCode == r.ErrCode, $"DELETE {path}: {r.StatusCode} {r.Text}");
        }
    }
}

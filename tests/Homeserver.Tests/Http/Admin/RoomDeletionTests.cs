using System.Text.Json.Nodes;
using Homeserver.Errors;
using Homeserver.Rooms;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Http.Admin.RoomAdminCluster;

namespace Homeserver.Tests.Http.Admin;

/// <summary>
/// <c>DELETE /_synapse/admin/v2/rooms/{roomId}</c> end to end on two silos: the deletion runs in the background, its
/// members leave (and their /sync on the other silo says so), its aliases and directory entry go, a new room takes its
/// members when asked, a blocked room refuses joins, and a purged room is unknown everywhere afterwards.
/// </summary>
public sealed class RoomDeletionTests(RoomAdminCluster fixture) : IClassFixture<RoomAdminCluster>
{
    private static string E(string s) => MatrixTestClient.Escape(s);

    [Fact]
    public async Task Shutting_a_room_down_without_purge_makes_its_members_leave_moves_them_and_blocks_it()
    {
        var admin = await fixture.AdminAsync();
        var alice = await fixture.UserAsync("rdel-alice");
        var bob = await fixture.UserAsync("rdel-bob", fixture.B);
        var carol = await fixture.UserAsync("rdel-carol", fixture.B);
        var tag = Guid.NewGuid().ToString("N")[..8];
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat", ["visibility"] = "public", ["room_alias_name"] = $"bad{tag}" });
        await bob.JoinAsync(roomId);
        await alice.SendTextAsync(roomId, "something bad");
        await fixture.SettleAsync();
        var bobSince = (await bob.SyncAsync()).NextBatch();

        var started = (await admin.DeleteAsync($"{V2}/rooms/{E(roomId)}", new JsonObject
        {
            ["purge"] = false, ["block"] = true, ["new_room_user_id"] = admin.UserId, ["message"] = "Moved", ["room_name"] = "Notice",
        })).EnsureSuccess();
        var deleteId = started["delete_id"].GetValue<string>();
        var status = await WaitForDeletionAsync(admin.On(fixture.B), deleteId);
        Assert.Equal("complete", status["status"].GetValue<string>());
        Assert.Equal(roomId, status["room_id"].GetValue<string>());
        var shutdown = status["shutdown_room"];
        Assert.Equal(new[] { alice.UserId, bob.UserId }.Order(StringComparer.Ordinal), shutdown["kicked_users"]!.AsArray().Select(u => u!.GetValue<string>()));
        Assert.Empty(shutdown["failed_to_kick_users"]!.AsArray());
        Assert.Equal([$"#bad{tag}:localhost"], shutdown["local_aliases"]!.AsArray().Select(a => a!.GetValue<string>()));
        var newRoomId = shutdown["new_room_id"]!.GetValue<string>();

        // Bob's /sync on silo B shows the leave, and that he is now in the new room with the message.
        await fixture.SettleAsync();
        var sync = (await bob.SyncAsync(bobSince)).EnsureSuccess();
        Assert.NotNull(sync.Body!["rooms"]?["leave"]?[roomId]);
        Assert.Null(sync.Body!["rooms"]?["join"]?[roomId]);
        var joinedNew = sync.Body!["rooms"]?["join"]?[newRoomId];
        Assert.NotNull(joinedNew);
        Assert.Contains(joinedNew["timeline"]!["events"]!.AsArray(), e => e!["content"]?["body"]?.GetValue<string>() == "Moved");

        // The alias follows to the new room; the old room is out of the directory, not purged, and blocked.
        var alias = (await carol.GetAsync($"{MatrixPaths.V3}/directory/room/{E($"#bad{tag}:localhost")}")).EnsureSuccess();
        Assert.Equal(newRoomId, alias["room_id"].GetValue<string>());
        var published = (await carol.GetAsync($"{MatrixPaths.V3}/directory/list/room/{E(roomId)}")).EnsureSuccess();
        Assert.Equal("private", published["visibility"].GetValue<string>());
        Assert.Equal(0, (await admin.GetAsync($"{V1}/rooms/{E(roomId)}")).EnsureSuccess()["joined_members"].GetValue<long>());
        var join = await carol.PostAsync($"{MatrixPaths.V3}/join/{E(roomId)}");
        Assert.Equal(403, join.StatusCode);
        Assert.Contains("blocked", join.Text);

        var byRoom = (await admin.GetAsync($"{V2}/rooms/{E(roomId)}/delete_status")).EnsureSuccess()["results"].AsArray();
        Assert.Equal(deleteId, Assert.Single(byRoom)!["delete_id"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_purged_room_is_gone_from_the_database_sync_and_every_read()
    {
        var admin = await fixture.AdminAsync();
        var alice = await fixture.UserAsync("rdel-purge");
        var bob = await fixture.UserAsync("rdel-purge-bob", fixture.B);
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat" });
        await bob.JoinAsync(roomId);
        var eventId = await alice.SendTextAsync(roomId, "to be purged");
        await fixture.SettleAsync();
        // Fill silo B's caches with the room first, so that a stale copy would show.
        (await bob.GetAsync($"{MatrixPaths.Room(roomId)}/state")).EnsureSuccess();
        (await bob.GetAsync(MatrixPaths.Event(roomId, eventId))).EnsureSuccess();
        Assert.NotNull((await bob.SyncAsync()).Body!["rooms"]?["join"]?[roomId]);

        var deleteId = (await admin.DeleteAsync($"{V2}/rooms/{E(roomId)}", new JsonObject())).EnsureSuccess()["delete_id"].GetValue<string>();
        var status = await WaitForDeletionAsync(admin, deleteId);
        Assert.Equal("complete", status["status"].GetValue<string>());
        Assert.Equal(2, status["shutdown_room"]["kicked_users"]!.AsArray().Count);

        await fixture.SettleAsync();
        await using (var cmd = fixture.Cluster.Database.CreateCommand(
                         "SELECT (SELECT count(*) FROM events WHERE room_id = $1) + (SELECT count(*) FROM room_memberships WHERE room_id = $1) + (SELECT count(*) FROM rooms WHERE room_id = $1)"))
        {
            cmd.Parameters.AddWithValue(roomId);
            Assert.Equal(0L, (long)(await cmd.ExecuteScalarAsync())!);
        }
        Assert.Null((await bob.SyncAsync()).Body!["rooms"]?["join"]?[roomId]);
        MatrixPaths.AssertError(await bob.GetAsync($"{MatrixPaths.Room(roomId)}/state"), 404, "M_NOT_FOUND");
        Assert.Equal(404, (await bob.GetAsync(MatrixPaths.Event(roomId, eventId))).StatusCode);
        MatrixPaths.AssertError(await admin.On(fixture.B).GetAsync($"{V1}/rooms/{E(roomId)}"), 404, "M_NOT_FOUND");
        Assert.Equal(404, (await bob.PostAsync($"{MatrixPaths.V3}/join/{E(roomId)}")).StatusCode);
        Assert.Equal(404, (await alice.PutAsync($"{MatrixPaths.Room(roomId)}/send/m.room.message/{Guid.NewGuid():N}",
            new JsonObject { ["msgtype"] = "m.text", ["body"] = "late" })).StatusCode);
    }

    [Fact]
    public async Task The_room_grain_refuses_to_purge_while_a_local_user_is_joined_unless_forced()
    {
        var alice = await fixture.UserAsync("rdel-force");
        var roomId = await alice.CreateRoomAsync();
        var room = fixture.B.Grains.GetGrain<IRoomGrain>(roomId);
        var refused = await Assert.ThrowsAsync<MatrixException>(() => room.PurgeAsync(force: false));
        Assert.Equal(400, refused.Status);
        Assert.Equal("Users are still joined to this room", refused.Message);
        // Alice is still joined when the forced purge runs: both silos hold her room list and the room's state in
        // their caches, and only the purge row's invalidation can drop them.
        await fixture.SettleAsync();
        foreach (var silo in new[] { fixture.A, fixture.B })
        {
            (await alice.On(silo).GetAsync($"{MatrixPaths.Room(roomId)}/state")).EnsureSuccess();
            Assert.NotNull((await alice.On(silo).SyncAsync()).Body!["rooms"]?["join"]?[roomId]);
        }

        await room.PurgeAsync(force: true);
        await fixture.SettleAsync();
        foreach (var silo in new[] { fixture.A, fixture.B })
        {
            MatrixPaths.AssertError(await alice.On(silo).GetAsync($"{MatrixPaths.Room(roomId)}/state"), 404, "M_NOT_FOUND");
            Assert.Null((await alice.On(silo).SyncAsync()).Body!["rooms"]?["join"]?[roomId]);
        }
    }

    [Fact]
    public async Task An_interrupted_deletion_is_resumed_when_asked_about_and_a_second_one_is_refused_meanwhile()
    {
        var admin = await fixture.AdminAsync();
        var alice = await fixture.UserAsync("rdel-resume");
        var roomId = await alice.CreateRoomAsync();
        // What a deletion whose silo died half way leaves behind: its row, active, with what it had done.
        var deleteId = $"resume{Guid.NewGuid():N}";
        await using (var cmd = fixture.Cluster.Database.CreateCommand(
                         "INSERT INTO room_deletions (delete_id, room_id, status, params, result) VALUES ($1, $2, 'active', $3, $4)"))
        {
            cmd.Parameters.AddWithValue(deleteId);
            cmd.Parameters.AddWithValue(roomId);
            cmd.Parameters.AddWithValue($$"""{"requester_user_id":"{{admin.UserId}}","block":false,"purge":true,"force_purge":false}""");
            cmd.Parameters.AddWithValue("""{"kicked_users":[],"failed_to_kick_users":[],"local_aliases":[],"new_room_id":null}""");
            await cmd.ExecuteNonQueryAsync();
        }

        var second = await admin.DeleteAsync($"{V2}/rooms/{E(roomId)}", new JsonObject());
        MatrixPaths.AssertError(second, 400, "M_UNKNOWN");
        Assert.Contains("already in progress", second.Text);

        var status = await WaitForDeletionAsync(admin.On(fixture.B), deleteId);
        Assert.Equal("complete", status["status"].GetValue<string>());
        Assert.Equal([alice.UserId], status["shutdown_room"]["kicked_users"]!.AsArray().Select(u => u!.GetValue<string>()));
        MatrixPaths.AssertError(await admin.GetAsync($"{V1}/rooms/{E(roomId)}"), 404, "M_NOT_FOUND");
        var results = (await admin.GetAsync($"{V2}/rooms/{E(roomId)}/delete_status")).EnsureSuccess()["results"].AsArray();
        Assert.Equal([deleteId], results.Select(r => r!["delete_id"]!.GetValue<string>()));
    }

    [Fact]
    public async Task A_blocked_unknown_room_can_be_deleted_and_stays_blocked()
    {
        var admin = await fixture.AdminAsync();
        var roomId = $"!never{Guid.NewGuid():N}:localhost";
        var deleteId = (await admin.DeleteAsync($"{V2}/rooms/{E(roomId)}", new JsonObject { ["block"] = true })).EnsureSuccess()["delete_id"].GetValue<string>();
        Assert.Equal("complete", (await WaitForDeletionAsync(admin, deleteId))["status"].GetValue<string>());
        Assert.True((await admin.GetAsync($"{V1}/rooms/{E(roomId)}/block")).EnsureSuccess()["block"].GetValue<bool>());
    }

    [Fact]
    public async Task The_synchronous_v1_delete_answers_the_shutdown_result_when_done()
    {
        var admin = await fixture.AdminAsync();
        var alice = await fixture.UserAsync("rdel-v1");
        var roomId = await alice.CreateRoomAsync();
        var result = (await admin.On(fixture.B).DeleteAsync($"{V1}/rooms/{E(roomId)}", new JsonObject())).EnsureSuccess();
        Assert.Equal([alice.UserId], result["kicked_users"].AsArray().Select(u => u!.GetValue<string>()));
        Assert.Null(result.Body!["new_room_id"]);
        MatrixPaths.AssertError(await admin.GetAsync($"{V1}/rooms/{E(roomId)}"), 404, "M_NOT_FOUND");
    }
}

using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Http.Admin.RoomAdminCluster;

namespace Homeserver.Tests.Http.Admin;

/// <summary>Event reports: a member reports an event (spec "Reporting content"), an admin lists, reads and deletes
/// the report (Synapse's docs/admin_api/event_reports.md).</summary>
public sealed class EventReportTests(RoomAdminCluster fixture) : IClassFixture<RoomAdminCluster>
{
    private static string E(string s) => MatrixTestClient.Escape(s);

    private static string Report(string roomId, string eventId) => $"{MatrixPaths.Room(roomId)}/report/{E(eventId)}";

    [Fact]
    public async Task A_report_round_trips_through_the_admin_api()
    {
        var admin = await fixture.AdminAsync();
        var alice = await fixture.UserAsync("rep-alice");
        var bob = await fixture.UserAsync("rep-bob", fixture.B);
        var roomId = await alice.CreateRoomAsync(new JsonObject { ["preset"] = "public_chat", ["name"] = "Reported" });
        await bob.JoinAsync(roomId);
        var eventId = await alice.SendTextAsync(roomId, "spam");
        await fixture.SettleAsync();

        var reported = (await bob.PostAsync(Report(roomId, eventId), new JsonObject { ["reason"] = "spam!", ["score"] = -100 })).EnsureSuccess();
        Assert.Empty(reported.Body!.AsObject());

        var list = (await admin.On(fixture.B).GetAsync($"{V1}/event_reports?room_id={E(roomId)}")).EnsureSuccess();
        Assert.Equal(1, list["total"].GetValue<long>());
        var entry = Assert.Single(list["event_reports"].AsArray())!;
        Assert.Equal(eventId, entry["event_id"]!.GetValue<string>());
        Assert.Equal(bob.UserId, entry["user_id"]!.GetValue<string>());
        Assert.Equal(alice.UserId, entry["sender"]!.GetValue<string>());
        Assert.Equal("spam!", entry["reason"]!.GetValue<string>());
        Assert.Equal(-100, entry["score"]!.GetValue<long>());
        Assert.Equal("Reported", entry["name"]!.GetValue<string>());
        var reportId = entry["id"]!.GetValue<long>();

        Assert.Equal(1, (await admin.GetAsync($"{V1}/event_reports?event_sender_user_id={E(alice.UserId)}&room_id={E(roomId)}")).EnsureSuccess()["total"].GetValue<long>());
        Assert.Equal(0, (await admin.GetAsync($"{V1}/event_reports?event_sender_user_id={E(bob.UserId)}&room_id={E(roomId)}")).EnsureSuccess()["total"].GetValue<long>());

        var detail = (await admin.GetAsync($"{V1}/event_reports/{reportId}")).EnsureSuccess();
        Assert.Equal(eventId, detail["event_json"]["event_id"]?.GetValue<string>() ?? eventId);
        Assert.Equal("spam", detail["event_json"]["content"]!["body"]!.GetValue<string>());

        Assert.Empty((await admin.DeleteAsync($"{V1}/event_reports/{reportId}")).EnsureSuccess().Body!.AsObject());
        MatrixPaths.AssertError(await admin.GetAsync($"{V1}/event_reports/{reportId}"), 404, "M_NOT_FOUND");
        MatrixPaths.AssertError(await admin.DeleteAsync($"{V1}/event_reports/{reportId}"), 404, "M_NOT_FOUND");
    }

    [Fact]
    public async Task Reports_of_events_the_reporter_cannot_see_or_that_do_not_exist_are_404_and_bad_input_400()
    {
        var admin = await fixture.AdminAsync();
        var alice = await fixture.UserAsync("rep-private");
        var eve = await fixture.UserAsync("rep-eve");
        var roomId = await alice.CreateRoomAsync();
        var eventId = await alice.SendTextAsync(roomId, "private");

        MatrixPaths.AssertError(await eve.PostAsync(Report(roomId, eventId), new JsonObject()), 404, "M_NOT_FOUND");
        MatrixPaths.AssertError(await alice.PostAsync(Report(roomId, "$nosuchevent"), new JsonObject()), 404, "M_NOT_FOUND");
        MatrixPaths.AssertError(await alice.PostAsync(Report(roomId, eventId), new JsonObject { ["score"] = "bad" }), 400, "M_BAD_JSON");
        MatrixPaths.AssertError(await alice.PostAsync(Report(roomId, eventId), new JsonObject { ["reason"] = 5 }), 400, "M_BAD_JSON");
        MatrixPaths.AssertError(await admin.GetAsync($"{V1}/event_reports/abc"), 400, "M_INVALID_PARAM");
        MatrixPaths.AssertError(await admin.GetAsync($"{V1}/event_reports?from=-1"), 400, "M_INVALID_PARAM");
        MatrixPaths.AssertError(await admin.GetAsync($"{V1}/event_reports?dir=x"), 400, "M_INVALID_PARAM");
        Assert.Equal(0, (await admin.GetAsync($"{V1}/event_reports?room_id={E(roomId)}")).EnsureSuccess()["total"].GetValue<long>());
    }

    [Fact]
    public async Task Reports_page_newest_first_with_a_next_token()
    {
        var admin = await fixture.AdminAsync();
        var alice = await fixture.UserAsync("rep-page");
        var roomId = await alice.CreateRoomAsync();
        var events = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            var eventId = await alice.SendTextAsync(roomId, $"m{i}");
            events.Add(eventId);
            (await alice.PostAsync(Report(roomId, eventId), new JsonObject { ["reason"] = $"r{i}" })).EnsureSuccess();
            await Task.Delay(5);
        }
        var page = (await admin.GetAsync($"{V1}/event_reports?room_id={E(roomId)}&limit=2")).EnsureSuccess();
        Assert.Equal(3, page["total"].GetValue<long>());
        Assert.Equal([events[2], events[1]], page["event_reports"].AsArray().Select(r => r!["event_id"]!.GetValue<string>()));
        Assert.Equal(2, page["next_token"].GetValue<int>());
        var rest = (await admin.GetAsync($"{V1}/event_reports?room_id={E(roomId)}&limit=2&from=2")).EnsureSuccess();
        Assert.Equal([events[0]], rest["event_reports"].AsArray().Select(r => r!["event_id"]!.GetValue<string>()));
        Assert.Null(rest.Body!["next_token"]);
        var forwards = (await admin.GetAsync($"{V1}/event_reports?room_id={E(roomId)}&dir=f")).EnsureSuccess();
        Assert.Equal(events, forwards["event_reports"].AsArray().Select(r => r!["event_id"]!.GetValue<string>()));
    }

    [Fact]
    public async Task A_room_can_be_reported_and_an_unknown_one_is_404()
    {
        var alice = await fixture.UserAsync("rep-room");
        var roomId = await alice.CreateRoomAsync();
        Assert.Empty((await alice.PostAsync($"{MatrixPaths.Room(roomId)}/report", new JsonObject { ["reason"] = "abuse" })).EnsureSuccess().Body!.AsObject());
        await using (var cmd = fixture.Cluster.Database.CreateCommand("SELECT user_id, reason FROM room_reports WHERE room_id = $1"))
        {
            cmd.Parameters.AddWithValue(roomId);
            await using var reader = await cmd.ExecuteReaderAsync();
            Assert.True(await reader.ReadAsync());
            Assert.Equal(alice.UserId, reader.GetString(0));
            Assert.Equal("abuse", reader.GetString(1));
        }
        MatrixPaths.AssertError(await alice.PostAsync($"{MatrixPaths.Room("!nosuchroom:localhost")}/report", new JsonObject { ["reason"] = "x" }), 404, "M_NOT_FOUND");
        MatrixPaths.AssertError(await alice.PostAsync($"{MatrixPaths.Room(roomId)}/report", new JsonObject()), 400, "M_BAD_JSON");
    }
}

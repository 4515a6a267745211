using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.UserStreams;

[Collection(UserStreamsHttpCollection.Name)]
public sealed class PushRuleHttpTests(UserStreamsHttpCluster fx)
{
    private const string Rules = $"{V3}/pushrules";

    private static string[] Ids(JsonNode? rules) => rules!.AsArray().Select(r => r!["rule_id"]!.GetValue<string>()).ToArray();

    [Fact]
    public async Task Defaults_are_served_for_the_user()
    {
        var alice = await fx.UserAsync("alice");
        var all = (await alice.GetAsync($"{Rules}/")).EnsureSuccess();
        var global = all["global"];
        Assert.Equal(".m.rule.master", Ids(global["override"])[0]);
        Assert.Contains(".m.rule.message", Ids(global["underride"]));
        var localpart = alice.UserId[1..alice.UserId.IndexOf(':')];
        Assert.Equal(localpart, global["content"]![0]!["pattern"]!.GetValue<string>());
        var invite = global["override"]!.AsArray().First(r => r!["rule_id"]!.GetValue<string>() == ".m.rule.invite_for_me");
        Assert.Contains(invite!["conditions"]!.AsArray(), c => c!["pattern"]?.GetValue<string>() == alice.UserId);

        var globalOnly = (await alice.GetAsync($"{Rules}/global/")).EnsureSuccess();
        Assert.Equal(global.ToJsonString(), globalOnly.Body!.ToJsonString());
        var master = (await alice.GetAsync($"{Rules}/global/override/.m.rule.master")).EnsureSuccess();
        Assert.False(master["enabled"].GetValue<bool>());
        Assert.True(master["default"].GetValue<bool>());
        Assert.False((await alice.GetAsync($"{Rules}/global/override/.m.rule.master/enabled")).EnsureSuccess()["enabled"].GetValue<bool>());
        Assert.Equal("notify", (await alice.GetAsync($"{Rules}/global/underride/.m.rule.message/actions")).EnsureSuccess()["actions"][0]!.GetValue<string>());

        AssertError(await alice.GetAsync($"{Rules}/global/override/nope"), 404, "M_NOT_FOUND");
        AssertError(await alice.GetAsync($"{Rules}/global/bogus/.m.rule.master"), 400, "M_INVALID_PARAM");
        Assert.Equal(401, (await fx.A.Http.GetJsonAsync($"{Rules}/")).StatusCode);
    }

    [Fact]
    public async Task User_rules_are_ordered_by_before_and_after_and_merged_around_the_defaults()
    {
        var alice = await fx.UserAsync("alice");
        var notify = new JsonArray("notify");
        JsonObject Override() => new() { ["actions"] = notify.DeepClone(), ["conditions"] = new JsonArray(new JsonObject { ["kind"] = "event_match", ["key"] = "content.body", ["pattern"] = "x" }) };

        (await alice.PutAsync($"{Rules}/global/override/one", Override())).EnsureSuccess();
        (await alice.PutAsync($"{Rules}/global/override/two", Override())).EnsureSuccess();      // highest priority
        (await alice.PutAsync($"{Rules}/global/override/three?after=two", Override())).EnsureSuccess();
        (await alice.PutAsync($"{Rules}/global/override/four?before=one", Override())).EnsureSuccess();
        // Read on the silo that wrote: no settling, so this checks read-your-writes through the silo's cache.
        var overrides = Ids((await alice.GetAsync($"{Rules}/")).EnsureSuccess()["global"]["override"]);
        Assert.Equal([".m.rule.master", "two", "three", "four", "one", ".m.rule.suppress_notices"], overrides[..6]);

        (await alice.PutAsync($"{Rules}/global/room/{E("!abc:localhost")}", new JsonObject { ["actions"] = new JsonArray("dont_notify") })).EnsureSuccess();
        (await alice.PutAsync($"{Rules}/global/content/cats", new JsonObject { ["actions"] = notify.DeepClone(), ["pattern"] = "cat*" })).EnsureSuccess();
        (await alice.PutAsync($"{Rules}/global/underride/mine", new JsonObject { ["actions"] = notify.DeepClone(), ["conditions"] = new JsonArray() })).EnsureSuccess();

        await fx.SettleAsync();
        var onB = alice.On(fx.B);
        var global = (await onB.GetAsync($"{Rules}/")).EnsureSuccess()["global"];
        Assert.Equal([".m.rule.master", "two", "three", "four", "one"], Ids(global["override"])[..5]);
        var room = global["room"]![0]!;
        Assert.Equal("!abc:localhost", room["rule_id"]!.GetValue<string>());
        Assert.Equal("room_id", room["conditions"]![0]!["key"]!.GetValue<string>());
        Assert.False(room["default"]!.GetValue<bool>());
        Assert.Equal(["cats", ".m.rule.contains_user_name"], Ids(global["content"]));
        Assert.Equal("cat*", global["content"]![0]!["pattern"]!.GetValue<string>());
        Assert.Equal("mine", Ids(global["underride"])[0]);

        (await onB.DeleteAsync($"{Rules}/global/override/three")).EnsureSuccess();
        AssertError(await onB.GetAsync($"{Rules}/global/override/three"), 404, "M_NOT_FOUND");
        Assert.Equal([".m.rule.master", "two", "four", "one"], Ids((await onB.GetAsync($"{Rules}/")).EnsureSuccess()["global"]["override"])[..4]);
    }

    [Fact]
    public async Task Enabled_and_actions_change_user_and_default_rules()
    {
        var alice = await fx.UserAsync("alice");
        (await alice.PutAsync($"{Rules}/global/override/.m.rule.master/enabled", new { enabled = true })).EnsureSuccess();
        (await alice.PutAsync($"{Rules}/global/underride/.m.rule.message/actions", new JsonObject { ["actions"] = new JsonArray("dont_notify") })).EnsureSuccess();
        (await alice.PutAsync($"{Rules}/global/sender/{E("@bob:localhost")}", new JsonObject { ["actions"] = new JsonArray("notify") })).EnsureSuccess();
        (await alice.PutAsync($"{Rules}/global/sender/{E("@bob:localhost")}/enabled", new { enabled = false })).EnsureSuccess();

        Assert.True((await alice.GetAsync($"{Rules}/global/override/.m.rule.master/enabled")).EnsureSuccess()["enabled"].GetValue<bool>());
        var message = (await alice.GetAsync($"{Rules}/global/underride/.m.rule.message")).EnsureSuccess();
        Assert.Equal("[\"dont_notify\"]", message["actions"].ToJsonString());
        Assert.True(message["default"].GetValue<bool>());
        Assert.False((await alice.GetAsync($"{Rules}/global/sender/{E("@bob:localhost")}/enabled")).EnsureSuccess()["enabled"].GetValue<bool>());

        // Another user is unaffected.
        var bob = await fx.UserAsync("bob");
        Assert.False((await bob.GetAsync($"{Rules}/global/override/.m.rule.master/enabled")).EnsureSuccess()["enabled"].GetValue<bool>());
    }

    [Fact]
    public async Task Invalid_changes_are_rejected_with_matrix_errors_and_change_nothing()
    {
        var alice = await fx.UserAsync("alice");
        var ok = new JsonObject { ["actions"] = new JsonArray("notify"), ["pattern"] = "p" };
        AssertError(await alice.PutAsync($"{Rules}/global/content/.mine", ok), 400, "M_INVALID_PARAM");
        AssertError(await alice.PutAsync($"{Rules}/global/bogus/x", ok), 400, "M_INVALID_PARAM");
        AssertError(await alice.PutAsync($"{Rules}/global/content/x", new JsonObject { ["pattern"] = "p" }), 400, "M_BAD_JSON");
        AssertError(await alice.PutAsync($"{Rules}/global/content/x", new JsonObject { ["actions"] = new JsonArray("notify") }), 400, "M_BAD_JSON");
        AssertError(await alice.PutAsync($"{Rules}/global/content/x", new JsonObject { ["actions"] = new JsonArray("explode"), ["pattern"] = "p" }), 400, "M_INVALID_PARAM");
        AssertError(await alice.PutAsync($"{Rules}/global/override/x", new JsonObject { ["actions"] = new JsonArray(), ["conditions"] = new JsonArray(new JsonObject()) }), 400, "M_BAD_JSON");
        AssertError(await alice.PutAsync($"{Rules}/global/content/x?before=missing", ok), 400, "M_INVALID_PARAM");
        AssertError(await alice.PutAsync($"{Rules}/global/content/x", "{oops"), 400, "M_NOT_JSON");
        AssertError(await alice.DeleteAsync($"{Rules}/global/content/missing"), 404, "M_NOT_FOUND");
        AssertError(await alice.DeleteAsync($"{Rules}/global/override/.m.rule.master"), 404, "M_NOT_FOUND");
        AssertError(await alice.PutAsync($"{Rules}/global/override/.m.rule.master/enabled", new { enabled = "yes" }), 400, "M_BAD_JSON");
        AssertError(await alice.PutAsync($"{Rules}/global/override/missing/enabled", new { enabled = true }), 404, "M_NOT_FOUND");
        AssertError(await alice.PutAsync($"{Rules}/global/override/.m.rule.message/enabled", new { enabled = true }), 404, "M_NOT_FOUND");
        AssertError(await alice.PutAsync($"{Rules}/global/underride/.m.rule.message/actions", new { actions = "notify" }), 400, "M_BAD_JSON");

        var global = (await alice.GetAsync($"{Rules}/")).EnsureSuccess()["global"];
        Assert.Equal([".m.rule.contains_user_name"], Ids(global["content"]));
        Assert.False(global["override"]![0]!["enabled"]!.GetValue<bool>());
    }

    [Fact]
    public async Task Paths_are_read_segment_by_segment_and_what_names_nothing_is_refused()
    {
        var alice = await fx.UserAsync("alice");
        AssertError(await alice.GetAsync(Rules), 404, "M_UNRECOGNIZED");
        foreach (var path in new[] { "/global", "/global/room", "/not_a_scope/", "/global/override/.m.rule.master/not_an_attr" })
            Assert.Equal(400, (await alice.GetAsync($"{Rules}{path}")).StatusCode);
        AssertError(await alice.GetAsync($"{Rules}/global/not_a_kind/"), 400, "M_INVALID_PARAM");
        var underride = (await alice.GetAsync($"{Rules}/global/underride/")).EnsureSuccess();
        Assert.Contains(".m.rule.message", Ids(underride.Body));

        var rule = new JsonObject { ["actions"] = new JsonArray("notify") };
        foreach (var path in new[] { "/", "/not_a_scope/room/x", "/global", "/global/room", "/global/room/", "/global/room/a%2Fb",
                     "/global/room/a%5Cb", "/global/override/.m.rule.master/not_an_attr" })
            Assert.Equal(400, (await alice.PutAsync($"{Rules}{path}", rule)).StatusCode);
        AssertError(await alice.PutAsync($"{Rules}/global/override/mine", rule), 400, "M_BAD_JSON"); // no conditions
        AssertError(await alice.PutAsync($"{Rules}/global/underride/mine", rule), 400, "M_BAD_JSON");
        AssertError(await alice.PutAsync($"{Rules}/global/room/{E("!r:localhost")}", new JsonObject()), 400, "M_BAD_JSON"); // no actions
        Assert.Equal(400, (await alice.DeleteAsync($"{Rules}/global/override/.m.rule.master/enabled")).StatusCode);

        (await alice.PutAsync($"{Rules}/global/room/{E("!r:localhost")}", rule)).EnsureSuccess();
        var rooms = (await alice.GetAsync($"{Rules}/global/room/")).EnsureSuccess();
        Assert.Equal(["!r:localhost"], Ids(rooms.Body));
    }
}

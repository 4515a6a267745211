using Homeserver.Tests.Http.UserStreams;
using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.UserStreams;

/// <summary>Push rules reach /sync as <c>m.push_rules</c>: the writer on one silo wakes a long-poll on the other.</summary>
[Collection(UserStreamsHttpCollection.Name)]
public sealed class PushRulesSyncTests(UserStreamsHttpCluster fx)
{
    private static JsonNode? PushRules(SyncProbe.Result r) =>
        r.AccountData.FirstOrDefault(e => e!["type"]!.GetValue<string>() == "m.push_rules")?["content"];

    [Fact]
    public async Task Initial_sync_carries_the_ruleset_and_a_change_on_one_silo_wakes_a_long_poll_on_the_other()
    {
        var alice = await fx.UserAsync("alice");
        var initial = await SyncProbe.SyncAsync(fx.B, alice, null, TimeSpan.Zero);
        Assert.Equal(".m.rule.master", PushRules(initial)!["global"]!["override"]![0]!["rule_id"]!.GetValue<string>());

        var quiet = await SyncProbe.SyncAsync(fx.B, alice, initial.NextBatch, TimeSpan.FromMilliseconds(200));
        Assert.False(quiet.Woken);
        Assert.Null(PushRules(quiet));

        var poll = SyncProbe.SyncAsync(fx.B, alice, initial.NextBatch, TimeSpan.FromSeconds(20));
        await Task.Delay(100);
        (await alice.PutAsync($"{V3}/pushrules/global/override/.m.rule.master/enabled", new { enabled = true })).EnsureSuccess();
        var woken = await poll;
        Assert.True(woken.Woken);
        Assert.True(woken.HasChanges);
        Assert.True(PushRules(woken)!["global"]!["override"]![0]!["enabled"]!.GetValue<bool>());

        var after = await SyncProbe.SyncAsync(fx.B, alice, woken.NextBatch, TimeSpan.FromMilliseconds(200));
        Assert.Null(PushRules(after));
    }

    [Fact]
    public async Task Another_users_change_does_not_wake_or_reach_a_user()
    {
        var alice = await fx.UserAsync("alice");
        var bob = await fx.UserAsync("bob");
        var initial = await SyncProbe.SyncAsync(fx.B, alice, null, TimeSpan.Zero);
        var poll = SyncProbe.SyncAsync(fx.B, alice, initial.NextBatch, TimeSpan.FromSeconds(1));
        (await bob.PutAsync($"{V3}/pushrules/global/override/.m.rule.master/enabled", new { enabled = true })).EnsureSuccess();
        var result = await poll;
        Assert.False(result.Woken);
        Assert.Null(PushRules(result));
    }
}

[Collection(UserStreamsHttpCollection.Name)]
public sealed class PushRulesSyncHttpTests(UserStreamsHttpCluster fx)
{
    [Fact]
    public async Task Sync_over_http_always_carries_m_push_rules_initially_and_again_after_a_change_made_on_the_other_silo()
    {
        var alice = await fx.UserAsync("alice");
        var onB = alice.On(fx.B);
        var initial = await onB.SyncAsync();
        var rules = Assert.Single(initial.Events("account_data"), e => e!["type"]!.GetValue<string>() == "m.push_rules");
        Assert.Equal(".m.rule.master", rules!["content"]!["global"]!["override"]![0]!["rule_id"]!.GetValue<string>());

        var poll = onB.SyncAsync(initial.NextBatch(), timeoutMs: 20_000);
        await Task.Delay(200);
        Assert.False(poll.IsCompleted);
        (await alice.PutAsync($"{V3}/pushrules/global/underride/.m.rule.message/enabled", new { enabled = false })).EnsureSuccess();
        var woken = await poll;
        var changed = Assert.Single(woken.Events("account_data"), e => e!["type"]!.GetValue<string>() == "m.push_rules");
        var message = changed!["content"]!["global"]!["underride"]!.AsArray().First(r => r!["rule_id"]!.GetValue<string>() == ".m.rule.message");
        Assert.False(message!["enabled"]!.GetValue<bool>());

        var quiet = await onB.SyncAsync(woken.NextBatch(), timeoutMs: 0);
        Assert.DoesNotContain(quiet.Events("account_data"), e => e!["type"]!.GetValue<string>() == "m.push_rules");
    }
}

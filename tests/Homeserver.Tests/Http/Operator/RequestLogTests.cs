using System.Net;
using System.Text.Json.Nodes;
using Homeserver.Api.Observability;
using Homeserver.Hosting;
using Homeserver.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Microsoft.Extensions.Options;

namespace Homeserver.Tests.Http.Operator;

/// <summary>
/// The request log (issue 11): one line per request with method, route template, status, duration and user; no access
/// token (sent as a header or as <c>?access_token=</c>) and no password in any line any logger writes, with
/// ASP.NET Core's own logging turned up to Debug; the JSON console format by configuration.
/// </summary>
public sealed class RequestLogTests
{
    private const string WhoAmI = "/_matrix/client/v3/account/whoami";

    private static List<LogCapture.Entry> RequestLines(LogCapture logs) =>
        logs.Entries.Where(e => e.Category == typeof(RequestLogging).FullName).ToList();

    [Fact]
    public async Task Every_request_has_one_line_with_route_status_duration_and_user_and_no_line_has_a_secret()
    {
        var logs = new LogCapture(LogLevel.Debug);
        await using var cluster = await HomeserverTestCluster.StartAsync(1, new Dictionary<string, string?>
        {
            ["Homeserver:Logging:Format"] = "json",
            ["Logging:LogLevel:Default"] = "Information",
            ["Logging:LogLevel:Microsoft"] = "Information",
            ["Logging:LogLevel:Microsoft.AspNetCore"] = "Debug",
        }, logs.AddTo);
        var silo = cluster.Silos[0];
        const string password = "a password that must never be logged 7Q";
        var alice = await MatrixTestClient.RegisterAsync(silo, MatrixTestClient.UniqueLocalpart("reqlog"), password);

        // The token as a header, then in the query string (the deprecated way, still accepted), then a wrong one.
        (await alice.GetAsync(WhoAmI)).EnsureSuccess();
        using var anonymous = new HttpClient { BaseAddress = new Uri(silo.BaseUrl) };
        var tagged = $"{WhoAmI}?access_token={Uri.EscapeDataString(alice.AccessToken)}&marker=query-auth";
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync(tagged)).StatusCode);
        const string wrongToken = "syt_not_a_real_token_but_still_secret_91x";
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync($"{WhoAmI}?access_token={wrongToken}")).StatusCode);
        var login = await anonymous.PostJsonAsync("/_matrix/client/v3/login", new JsonObject
        {
            ["type"] = "m.login.password",
            ["identifier"] = new JsonObject { ["type"] = "m.id.user", ["user"] = alice.UserId },
            ["password"] = password,
        });
        var secondToken = login.EnsureSuccess()["access_token"].GetValue<string>();

        await WaitForAsync(() => RequestLines(logs).Count(e => (string?)e["Route"] == WhoAmI) >= 3);
        var whoami = RequestLines(logs).Where(e => (string?)e["Route"] == WhoAmI).ToList();
        Assert.Equal(3, whoami.Count);
        Assert.Equal(2, whoami.Count(e => (string?)e["UserId"] == alice.UserId && (int?)e["Status"] == 200 && (string?)e["Method"] == "GET"));
        Assert.Contains(whoami, e => (int?)e["Status"] == 401 && (string?)e["UserId"] == "-");
        Assert.All(whoami, e => Assert.IsType<double>(e["DurationMs"]));
        Assert.All(whoami, e => Assert.Equal(LogLevel.Information, e.Level));
        Assert.Contains(RequestLines(logs), e => (string?)e["Route"] == "/_matrix/client/v3/register" && (int?)e["Status"] == 200);
        Assert.Contains(RequestLines(logs), e => (string?)e["Route"] == "/_matrix/client/v3/login" && (int?)e["Status"] == 200);

        // Nothing anywhere: not the tokens, not the password, not the query string (the marker beside the token).
        Assert.True(logs.Entries.Count > RequestLines(logs).Count, "ASP.NET Core's debug logging wrote nothing: the check below would prove nothing");
        foreach (var entry in logs.Entries)
        {
            var text = entry.AllText;
            Assert.DoesNotContain(alice.AccessToken, text);
            Assert.DoesNotContain(secondToken, text);
            Assert.DoesNotContain(wrongToken, text);
            Assert.DoesNotContain(password, text);
            Assert.DoesNotContain("query-auth", text);
        }

        // The console writes JSON.
        var console = silo.Services.GetRequiredService<IOptionsMonitor<ConsoleLoggerOptions>>().CurrentValue;
        Assert.Equal(ConsoleFormatterNames.Json, console.FormatterName);
    }

    [Fact]
    public void An_unknown_log_format_stops_the_start()
    {
        var e = Assert.Throws<HomeserverConfigurationException>(() => Homeserver.Api.HomeserverApp.Build([], b =>
            b.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["Homeserver:Postgres"] = "Host=127.0.0.1;Port=1;Username=nobody",
                ["Homeserver:Logging:Format"] = "xml",
            })));
        Assert.Contains("Homeserver:Logging:Format", e.Message);
    }

    private static async Task WaitForAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition() && DateTime.UtcNow < deadline) await Task.Delay(50);
    }
}

using System.Net;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Homeserver.Tests.Infrastructure;

/// <summary>
/// A push gateway for tests (spec: Push Gateway API): a real HTTP listener on a loopback port that records every
/// <c>POST /_matrix/push/v1/notify</c> body and answers what the test says (by default <c>{}</c>, or a list of
/// rejected pushkeys, or an error status for the next requests).
/// </summary>
public sealed class TestPushGateway : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly Channel<JsonObject> _received = Channel.CreateUnbounded<JsonObject>();
    private int _failNext;

    public HashSet<string> Rejected { get; } = [];
    public string Url { get; }

    private TestPushGateway(WebApplication app, string url) => (_app, Url) = (app, url);

    public static async Task<TestPushGateway> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        TestPushGateway? gateway = null;
        app.MapPost("/_matrix/push/v1/notify", async (HttpContext context) =>
        {
            // As strict as SyTest's gateway: the media type exactly, no parameters.
            if (context.Request.ContentType != "application/json") return Results.StatusCode(415);
            var body = (await JsonNode.ParseAsync(context.Request.Body))!.AsObject();
            if (Interlocked.Decrement(ref gateway!._failNext) >= 0) return Results.StatusCode(503);
            gateway._received.Writer.TryWrite(body);
            var pushKeys = body["notification"]?["devices"]?.AsArray().Select(d => d!["pushkey"]!.GetValue<string>()) ?? [];
            lock (gateway.Rejected)
                return Results.Json(new JsonObject { ["rejected"] = new JsonArray(pushKeys.Where(gateway.Rejected.Contains).Select(k => (JsonNode)k).ToArray()) });
        });
        await app.StartAsync();
        var address = app.Urls.Single();
        gateway = new TestPushGateway(app, $"{address}/_matrix/push/v1/notify");
        return gateway;
    }

    /// <summary>The next <paramref name="count"/> requests are answered 503 (and not recorded).</summary>
    public void FailNext(int count) => Interlocked.Exchange(ref _failNext, count);

    /// <summary>The next notification the gateway received that <paramref name="match"/> accepts, within
    /// <paramref name="timeout"/> (default 10 s); those it skips are dropped.</summary>
    public async Task<JsonObject> NextAsync(Func<JsonObject, bool>? match = null, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        try
        {
            while (true)
            {
                var body = await _received.Reader.ReadAsync(cts.Token);
                if (match is null || match(body)) return body;
            }
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException("The push gateway received no matching notification");
        }
    }

    /// <summary>Whatever arrives within <paramref name="window"/>.</summary>
    public async Task<List<JsonObject>> DrainAsync(TimeSpan window)
    {
        var bodies = new List<JsonObject>();
        using var cts = new CancellationTokenSource(window);
        try
        {
            while (true) bodies.Add(await _received.Reader.ReadAsync(cts.Token));
        }
        catch (OperationCanceledException) { return bodies; }
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}

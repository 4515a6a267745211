using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Homeserver.Outbound;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Homeserver.Pushers;

/// <summary>What a gateway said to one notification.</summary>
public enum GatewayOutcome
{
    Delivered,
    /// <summary>The gateway named the pusher's pushkey in <c>rejected</c>: the pusher must go.</summary>
    Rejected,
    /// <summary>No answer, or not a 2xx one: try again later.</summary>
    Failed,
}

/// <summary>
/// Sends notifications to push gateways (spec: Push Gateway API, <c>POST /_matrix/push/v1/notify</c>) through a client
/// whose connections go only where <see cref="OutboundAddressPolicy"/> allows.
/// </summary>
public sealed class PushGatewayClient(IHttpClientFactory clients, IOptions<HomeserverOptions> options, ILogger<PushGatewayClient> logger)
{
    public const string HttpClientName = "push-gateway";

    public async Task<GatewayOutcome> NotifyAsync(string url, string pushKey, JsonObject body, CancellationToken ct)
    {
        try
        {
            var client = clients.CreateClient(HttpClientName);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(options.Value.Push.GatewayTimeout);
            // Exactly application/json: gateways (SyTest's among them) read the media type without parameters.
            using var content = new StringContent(body.ToJsonString(), System.Text.Encoding.UTF8);
            content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
            using var response = await client.PostAsync(url, content, timeout.Token);
            if (!response.IsSuccessStatusCode)
            {
                logger.LogInformation("Push gateway {Url} answered {Status}", url, (int)response.StatusCode);
                return GatewayOutcome.Failed;
            }
            var answer = await ReadAnswerAsync(response, timeout.Token);
            return answer?["rejected"] is JsonArray rejected && rejected.Any(r => r is JsonValue v && v.TryGetValue<string>(out var k) && k == pushKey)
                ? GatewayOutcome.Rejected
                : GatewayOutcome.Delivered;
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException or IOException)
        {
            logger.LogInformation("Push gateway {Url} failed: {Error}", url, e.Message);
            return GatewayOutcome.Failed;
        }
    }

    // A gateway that answers 2xx delivered the notification, whatever its body: only a readable "rejected" list counts.
    private static async Task<JsonObject?> ReadAnswerAsync(HttpResponseMessage response, CancellationToken ct)
    {
        try { return await response.Content.ReadFromJsonAsync<JsonObject>(ct); }
        catch (System.Text.Json.JsonException) { return null; }
    }
}

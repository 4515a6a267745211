using System.Diagnostics;
using Homeserver.Api.Http;
using Homeserver.Observability;

namespace Homeserver.Api.Observability;

/// <summary>
/// One log line per request (method, route template, status, duration and the authenticated user, when the request
/// carried a valid token) and the <c>http.server.request.duration</c> histogram (<see cref="HomeserverMetrics.RequestServed"/>).
/// The route is the endpoint's template (<c>/_matrix/client/v3/rooms/{roomId}/send/...</c>), never the path or query
/// as sent: tokens travel in the query (<c>?access_token=</c>) and ids in the path would make every line and series
/// unique. Headers and bodies are not logged at all (tokens, passwords).
/// </summary>
public sealed partial class RequestLogging(RequestDelegate next, ILogger<RequestLogging> logger, HomeserverMetrics metrics)
{
    public async Task InvokeAsync(HttpContext context)
    {
        var log = logger.IsEnabled(LogLevel.Information);
        if (!log && !metrics.HttpRequestsEnabled)
        {
            await next(context);
            return;
        }
        var started = Stopwatch.GetTimestamp();
        try
        {
            await next(context);
        }
        finally
        {
            var duration = Stopwatch.GetElapsedTime(started);
            var route = (context.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText;
            metrics.RequestServed(context.Request.Method, route, context.Response.StatusCode, duration);
            if (log)
                Request(logger, context.Request.Method, route ?? "(no route)", context.Response.StatusCode,
                    duration.TotalMilliseconds, RequestAuth.AuthenticatedUser(context) ?? "-");
        }
    }

    [LoggerMessage(EventId = 1, EventName = "Request", Level = LogLevel.Information,
        Message = "{Method} {Route} {Status} {DurationMs:0.0} ms {UserId}")]
    private static partial void Request(ILogger logger, string method, string route, int status, double durationMs, string userId);
}

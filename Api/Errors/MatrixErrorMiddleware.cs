using System.Text.Json;
using Homeserver.Errors;

namespace Homeserver.Api.Errors;

/// <summary>
/// The one place that turns failures into Matrix error responses: <see cref="MatrixException"/> keeps its code and
/// status; anything else becomes a 500 <c>M_UNKNOWN</c> without a stack trace (and is logged).
/// </summary>
public sealed class MatrixErrorMiddleware(RequestDelegate next, IHostApplicationLifetime lifetime, ILogger<MatrixErrorMiddleware> logger)
{
    public async Task InvokeAsync(HttpContext context)
    {
        // Browser clients need these on every response, errors included (spec: "Web Browser Clients").
        var headers = context.Response.Headers;
        headers.AccessControlAllowOrigin = "*";
        headers.AccessControlAllowMethods = "GET, POST, PUT, DELETE, OPTIONS";
        headers.AccessControlAllowHeaders = "X-Requested-With, Content-Type, Authorization";
        if (HttpMethods.IsOptions(context.Request.Method))
        {
            context.Response.StatusCode = 204;
            return;
        }
        try
        {
            await next(context);
            // Routing answers a known path with the wrong method by a bare 405: give it a Matrix body.
            if (context.Response.StatusCode == 405 && !context.Response.HasStarted)
                await WriteAsync(context, 405, ErrorCodes.Unrecognized, "Method not allowed for this endpoint");
        }
        catch (MatrixException e)
        {
            await WriteAsync(context, e.Status, e.ErrCode, e.Message, e.ExtraJson, RateLimiting.ClientRateLimits.RetryAfterSeconds(e));
        }
        catch (BadHttpRequestException e)
        {
            await WriteAsync(context, e.StatusCode == 413 ? 413 : 400, e.StatusCode == 413 ? ErrorCodes.TooLarge : ErrorCodes.BadJson, e.Message);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; nothing to answer.
        }
        catch (OperationCanceledException) when (lifetime.ApplicationStopping.IsCancellationRequested)
        {
            // This server is stopping (a rolling restart): the client retries, and lands on another front end.
            await WriteAsync(context, 503, ErrorCodes.Unknown, "This server is restarting; retry", retryAfter: 1);
        }
        catch (Exception e) when (DependencyOutage.Is(e))
        {
            // Not a bug: PostgreSQL or a silo is unavailable. The client may retry; the server recovers by itself.
            logger.LogWarning("Unavailable for {Method} {Path}: {Error}", context.Request.Method, context.Request.Path, e.Message);
            await WriteAsync(context, 503, ErrorCodes.Unknown, "The server is temporarily unavailable; retry shortly",
                retryAfter: DependencyOutage.RetryAfterSeconds);
        }
        catch (Exception e)
        {
            logger.LogError(e, "Unhandled error for {Method} {Path}", context.Request.Method, context.Request.Path);
            await WriteAsync(context, 500, ErrorCodes.Unknown, "Internal server error");
        }
    }

    public static async Task WriteAsync(HttpContext context, int status, string errcode, string message, string? extraJson = null,
        int? retryAfter = null)
    {
        if (context.Response.HasStarted) return;
        var cors = context.Response.Headers.Where(h => h.Key.StartsWith("Access-Control-", StringComparison.Ordinal)).ToList();
        context.Response.Clear();
        foreach (var (k, v) in cors) context.Response.Headers[k] = v;
        if (retryAfter is { } seconds) context.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(ErrorBody(errcode, message, extraJson));
    }

    /// <summary>Longest error message sent; messages quote client values through <see cref="Quote.Short"/>, and this
    /// catches any that do not.</summary>
    public const int MaxMessageLength = 512;

    public static string ErrorBody(string errcode, string message, string? extraJson = null)
    {
        if (message.Length > MaxMessageLength)
            message = string.Concat(message.AsSpan(0, char.IsHighSurrogate(message[MaxMessageLength - 1]) ? MaxMessageLength - 1 : MaxMessageLength), "…");
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("errcode", errcode);
            w.WriteString("error", message);
            if (extraJson is not null)
            {
                using var extra = JsonDocument.Parse(extraJson);
                foreach (var p in extra.RootElement.EnumerateObject()) p.WriteTo(w);
            }
            w.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }
}

using System.Text.Json.Nodes;
using Homeserver.Errors;
using Homeserver.Matrix;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;

namespace Homeserver.Api.Http;

/// <summary>
/// How the boundary treats one endpoint's request body (endpoint metadata; without it: JSON up to
/// <see cref="HomeserverOptions.MaxRequestBodyBytes"/>).
/// </summary>
/// <param name="MaxBytes">Largest body accepted (413 <c>M_TOO_LARGE</c> beyond); null: the configured default.</param>
/// <param name="NotRead">The boundary leaves the body alone (the endpoint reads it itself, or answers without it).</param>
public sealed record ClientBodyPolicy(int? MaxBytes = null, bool NotRead = false)
{
    /// <summary>Events (send, state, redact): the spec's 65,536-byte limit on an event, applied to its content.</summary>
    public const int EventBytes = 65_536;

    public static readonly ClientBodyPolicy Event = new(EventBytes);
    public static readonly ClientBodyPolicy Ignored = new(NotRead: true);
}

/// <summary>A request's body as the boundary accepted it: null <see cref="Object"/> when the request had none.</summary>
public sealed record ClientJsonBody(JsonObject? Object, ReadOnlyMemory<byte> Utf8);

/// <summary>
/// Everything a client sends passes here before any handler sees it (after routing, so the endpoint's
/// <see cref="ClientBodyPolicy"/> is known): query parameters and path values PostgreSQL could not store are refused,
/// path values are bounded, and the body is read within its size limit and parsed by <see cref="ClientJson"/>, the
/// one parser of client JSON. Handlers take the result from <see cref="JsonBody"/>.
/// </summary>
public sealed class ClientRequestBoundary(RequestDelegate next, IOptions<HomeserverOptions> options)
{
    /// <summary>
    /// Longest path value (an id, a type, a transaction id). Spec identifiers are at most 255 bytes; this bound keeps
    /// any value that reaches a database index well inside a btree entry (about 2,700 bytes).
    /// </summary>
    public const int MaxPathValueLength = 1024;

    /// <summary>Longest request path answered by routing; Kestrel takes request lines up to 64 KiB so that these get a
    /// Matrix error instead of Kestrel's bare 414.</summary>
    public const int MaxPathLength = 8192;

    public async Task InvokeAsync(HttpContext context)
    {
        var request = context.Request;
        if (request.Path.Value is { Length: > MaxPathLength })
            throw new MatrixException(ErrorCodes.TooLarge, "Request path too long", 414);
        foreach (var (name, values) in request.Query)
        {
            ClientJson.RequireStorable(name, "A query parameter name");
            foreach (var value in values) ClientJson.RequireStorable(value ?? "", $"Query parameter '{Quote.Short(name)}'");
        }
        foreach (var (name, value) in request.RouteValues)
        {
            if (value is not string s) continue;
            ClientJson.RequireStorable(s, $"Path parameter '{name}'");
            if (s.Length > MaxPathValueLength) throw new MatrixException(ErrorCodes.TooLarge, $"Path parameter '{name}' is too long", 400);
        }

        var policy = context.GetEndpoint()?.Metadata.GetMetadata<ClientBodyPolicy>();
        if (policy is not { NotRead: true })
        {
            var body = await ReadAsync(context, policy?.MaxBytes ?? options.Value.MaxRequestBodyBytes);
            if (body is null) return; // the client went away mid-body
            context.Features.Set(body);
        }
        await next(context);
    }

    private static async Task<ClientJsonBody?> ReadAsync(HttpContext context, int maxBytes)
    {
        var request = context.Request;
        var declared = request.ContentLength;
        var hasBody = declared > 0
            || (declared is null && context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody == true);
        if (!hasBody) return new ClientJsonBody(null, ReadOnlyMemory<byte>.Empty);
        if (declared > maxBytes) throw TooLarge(maxBytes);

        var buffer = new byte[declared is { } n ? (int)n : Math.Min(maxBytes + 1, 16 * 1024)];
        var length = 0;
        try
        {
            while (true)
            {
                if (length == buffer.Length)
                {
                    // Kestrel ends a body at its declared length: nothing more to read, no larger buffer to make.
                    if (declared is not null) break;
                    if (length > maxBytes) throw TooLarge(maxBytes);
                    Array.Resize(ref buffer, (int)Math.Min((long)maxBytes + 1, buffer.Length * 2L));
                }
                var read = await request.Body.ReadAsync(buffer.AsMemory(length), context.RequestAborted);
                if (read == 0) break;
                length += read;
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException && context.RequestAborted.IsCancellationRequested)
        {
            return null;
        }
        if (length > maxBytes) throw TooLarge(maxBytes);
        if (length == 0) return new ClientJsonBody(null, ReadOnlyMemory<byte>.Empty);
        var utf8 = new ReadOnlyMemory<byte>(buffer, 0, length);
        return new ClientJsonBody(ClientJson.ParseObject(utf8), utf8);
    }

    private static MatrixException TooLarge(int maxBytes) =>
        new(ErrorCodes.TooLarge, $"Request body too large (at most {maxBytes} bytes here)", 413);
}

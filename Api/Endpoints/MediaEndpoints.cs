using System.Globalization;
using System.Text.Json.Nodes;
using Homeserver.Api.Http;
using Homeserver.Api.RateLimiting;
using Homeserver.Errors;
using Homeserver.Media;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;

namespace Homeserver.Api.Endpoints;

/// <summary>
/// The content repository (spec: Client-Server API, "Content repository"): uploads (at once, or reserved by
/// <c>/media/v1/create</c> and sent later), downloads, thumbnails, the upload limit and URL previews; under
/// <c>/_matrix/client/v1/media/</c> with an access token (authenticated media, v1.11) and under the older
/// <c>/_matrix/media/v3/</c> (and <c>r0</c>) where downloads and thumbnails need none. Content is streamed between the
/// client and <see cref="MediaStore"/> on this process: media bytes never pass through a grain. The server does not
/// federate, so media of another server is unknown here.
/// </summary>
public static class MediaEndpoints
{
    public const string LegacyPrefix = "/_matrix/media/v3";
    public const string AuthenticatedPrefix = "/_matrix/client/v1/media";

    /// <summary>How long a download of reserved content waits for it by default, and at most (spec: <c>timeout_ms</c>,
    /// default 20 s; Synapse caps it at 2 minutes).</summary>
    private static readonly TimeSpan DefaultUploadWait = TimeSpan.FromSeconds(20), MaxUploadWait = TimeSpan.FromMinutes(2);

    private static readonly TimeSpan UploadPollInterval = TimeSpan.FromMilliseconds(250);

    /// <summary>Longest file name and content type kept with an upload.</summary>
    private const int MaxNameLength = 255;

    /// <summary>What Synapse sends with media so a browser never runs it as a page of the server's origin.</summary>
    private const string ContentSecurityPolicy =
        "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; media-src 'self'; object-src 'self';";

    /// <summary>Types a browser may show inline (Synapse's <c>INLINE_CONTENT_TYPES</c>): none of them can run script.
    /// Everything else is served as an attachment.</summary>
    private static readonly HashSet<string> InlineContentTypes = new(StringComparer.OrdinalIgnoreCase)
    {
        "text/css", "text/plain", "text/csv", "application/json", "application/ld+json",
        "image/jpeg", "image/gif", "image/png", "image/apng", "image/webp", "image/avif",
        "video/mp4", "video/webm", "video/ogg", "video/quicktime",
        "audio/mp4", "audio/webm", "audio/aac", "audio/mpeg", "audio/ogg", "audio/wave", "audio/wav", "audio/x-wav",
        "audio/x-pn-wav", "audio/flac", "audio/x-flac",
    };

    public static IEndpointRouteBuilder MapMediaEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPost($"{LegacyPrefix}/upload", UploadAsync).WithMetadata(ClientBodyPolicy.Ignored, ClientRateLimit.MediaCreate);
        app.MapPut($"{LegacyPrefix}/upload/{{serverName}}/{{mediaId}}", UploadReservedAsync).WithMetadata(ClientBodyPolicy.Ignored);
        app.MapPost("/_matrix/media/v1/create", ReserveAsync).WithMetadata(ClientRateLimit.MediaCreate);
        foreach (var (prefix, authenticated) in new[] { (LegacyPrefix, false), (AuthenticatedPrefix, true) })
        {
            app.MapGet($"{prefix}/download/{{serverName}}/{{mediaId}}", (HttpContext c, string serverName, string mediaId) =>
                DownloadAsync(c, serverName, mediaId, null, authenticated));
            app.MapGet($"{prefix}/download/{{serverName}}/{{mediaId}}/{{fileName}}", (HttpContext c, string serverName, string mediaId, string fileName) =>
                DownloadAsync(c, serverName, mediaId, fileName, authenticated));
            app.MapGet($"{prefix}/thumbnail/{{serverName}}/{{mediaId}}", (HttpContext c, string serverName, string mediaId) =>
                ThumbnailAsync(c, serverName, mediaId, authenticated));
            app.MapGet($"{prefix}/config", GetConfigAsync);
            app.MapGet($"{prefix}/preview_url", PreviewUrlAsync);
        }
        app.MapDelete("/_synapse/admin/v1/media/{serverName}/{mediaId}", DeleteAsync);
        return app;
    }

    /// <summary>POST upload: the body is the content; answers its <c>mxc://</c> URI.</summary>
    private static async Task<IResult> UploadAsync(HttpContext context, MediaStore media, IOptions<HomeserverOptions> options)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var (name, type) = UploadMetadata(context, options.Value.Media);
        var mediaId = MediaStore.NewMediaId();
        await media.StoreAsync(mediaId, requester.UserId, reserved: false, name, type, context.Request.Body, context.RequestAborted);
        return Results.Json(new JsonObject { ["content_uri"] = Mxc(options.Value, mediaId) });
    }

    /// <summary>POST create: reserves an id whose content comes later (spec v1.7, asynchronous uploads).</summary>
    private static async Task<IResult> ReserveAsync(HttpContext context, MediaStore media, IOptions<HomeserverOptions> options)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var (mediaId, expires) = await media.ReserveAsync(requester.UserId);
        return Results.Json(new JsonObject
        {
            ["content_uri"] = Mxc(options.Value, mediaId),
            ["unused_expires_at"] = expires.ToUnixTimeMilliseconds(),
        });
    }

    /// <summary>PUT upload/{serverName}/{mediaId}: the content of a reserved id, from the user who reserved it, once.</summary>
    private static async Task<IResult> UploadReservedAsync(HttpContext context, string serverName, string mediaId, MediaStore media,
        IOptions<HomeserverOptions> options)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        if (serverName != options.Value.ServerName) throw MatrixException.Forbidden("Media of another server cannot be uploaded here");
        var (name, type) = UploadMetadata(context, options.Value.Media);
        await media.StoreAsync(mediaId, requester.UserId, reserved: true, name, type, context.Request.Body, context.RequestAborted);
        return Results.Json(new JsonObject());
    }

    /// <summary>The file name and type an upload is kept with. A declared length beyond the limit is refused before
    /// anything is read; Kestrel's own body limit (30 MB by default) is lifted, since <see cref="MediaStore"/> counts
    /// the bytes as it stores them and stops at the configured limit.</summary>
    private static (string? Name, string ContentType) UploadMetadata(HttpContext context, MediaOptions settings)
    {
        if (context.Request.ContentLength > settings.MaxUploadBytes)
            throw new MatrixException(ErrorCodes.TooLarge, $"Uploads are limited to {settings.MaxUploadBytes} bytes", 413);
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
            limit.MaxRequestBodySize = null;
        var name = QueryParameters.Optional(context, "filename");
        if (name is { Length: > MaxNameLength }) throw MatrixException.InvalidParam($"'filename' is longer than {MaxNameLength} characters");
        var type = context.Request.ContentType is { Length: > 0 } declared ? declared.Trim() : "application/octet-stream";
        if (type.Length > MaxNameLength || type.Any(char.IsControl)) throw MatrixException.InvalidParam("Invalid Content-Type");
        return (name, type);
    }

    private static async Task<IResult> DownloadAsync(HttpContext context, string serverName, string mediaId, string? fileName, bool authenticated)
    {
        if (authenticated) await RequestAuth.RequireUserAsync(context);
        var media = context.RequestServices.GetRequiredService<MediaStore>();
        var info = await UploadedAsync(context, serverName, mediaId);
        var response = context.Response;
        var type = info.ContentType ?? "application/octet-stream";
        if (type.StartsWith("text/", StringComparison.OrdinalIgnoreCase) && !type.Contains("charset", StringComparison.OrdinalIgnoreCase))
            type += "; charset=utf-8";
        response.ContentType = type;
        response.ContentLength = info.Size;
        response.Headers.ContentDisposition = ContentDisposition(info.ContentType, fileName ?? info.UploadName);
        SecurityHeaders(response);
        await media.CopyToAsync(info.MediaId, response.Body, context.RequestAborted);
        return Results.Empty;
    }

    private static async Task<IResult> ThumbnailAsync(HttpContext context, string serverName, string mediaId, bool authenticated)
    {
        if (authenticated) await RequestAuth.RequireUserAsync(context);
        var width = PositiveDimension(context, "width");
        var height = PositiveDimension(context, "height");
        var method = QueryParameters.Optional(context, "method") ?? "scale";
        if (method is not ("crop" or "scale")) throw MatrixException.InvalidParam("'method' must be crop or scale");
        _ = QueryParameters.Boolean(context, "animated"); // a preference; thumbnails here are never animated (the spec allows it)

        var media = context.RequestServices.GetRequiredService<MediaStore>();
        var settings = context.RequestServices.GetRequiredService<IOptions<HomeserverOptions>>().Value.Media;
        var info = await UploadedAsync(context, serverName, mediaId);
        if (!Thumbnailer.CanThumbnail(info.ContentType))
            throw new MatrixException(ErrorCodes.Unknown, "The server cannot thumbnail this content", 400);
        var size = Thumbnailer.Select(width, height, method);
        var thumbnail = (await media.GetThumbnailsAsync(info.MediaId))
            .FirstOrDefault(t => t.Width == size.Width && t.Height == size.Height && t.Method == size.Method);
        if (thumbnail is null)
        {
            // The header first: an image declaring too many pixels is refused before the rest of it is read.
            Thumbnailer.CheckDimensions(await media.ReadHeadAsync(info.MediaId) ?? [], settings.MaxImagePixels);
            var original = await media.ReadAllAsync(info, settings.MaxUploadBytes, context.RequestAborted)
                ?? throw MatrixException.NotFound("Unknown media");
            thumbnail = Thumbnailer.Generate(original, size, settings.MaxImagePixels);
            await media.StoreThumbnailAsync(info.MediaId, thumbnail);
        }
        SecurityHeaders(context.Response);
        context.Response.Headers.ContentDisposition = ContentDisposition(thumbnail.ContentType,
            thumbnail.ContentType == "image/jpeg" ? "thumbnail.jpg" : "thumbnail.png");
        return Results.Bytes(thumbnail.Data, thumbnail.ContentType);
    }

    private static async Task<IResult> GetConfigAsync(HttpContext context, IOptions<HomeserverOptions> options)
    {
        await RequestAuth.RequireUserAsync(context);
        return Results.Json(new JsonObject { ["m.upload.size"] = options.Value.Media.MaxUploadBytes });
    }

    private static async Task<IResult> PreviewUrlAsync(HttpContext context, UrlPreviewer previewer)
    {
        var requester = await RequestAuth.RequireUserAsync(context);
        var url = QueryParameters.Optional(context, "url") ?? throw MatrixException.MissingParam("Missing 'url'");
        return Results.Json(await previewer.PreviewAsync(url, requester.UserId, context.RequestAborted));
    }

    /// <summary>DELETE (Synapse's admin API): the upload, its content and its thumbnails go.</summary>
    private static async Task<IResult> DeleteAsync(HttpContext context, string serverName, string mediaId, MediaStore media,
        IOptions<HomeserverOptions> options)
    {
        await RequestAuth.RequireAdminAsync(context);
        if (serverName != options.Value.ServerName) throw MatrixException.InvalidParam("Can only delete local media");
        if (!await media.DeleteAsync(mediaId)) throw MatrixException.NotFound("Unknown media");
        return Results.Json(new JsonObject { ["deleted_media"] = new JsonArray(mediaId), ["total"] = 1 });
    }

    /// <summary>The upload's metadata once its content is there: reserved content is waited for up to
    /// <c>timeout_ms</c>, then 504 <c>M_NOT_YET_UPLOADED</c>; unknown media (or another server's) 404.</summary>
    private static async Task<MediaInfo> UploadedAsync(HttpContext context, string serverName, string mediaId)
    {
        var options = context.RequestServices.GetRequiredService<IOptions<HomeserverOptions>>().Value;
        if (serverName != options.ServerName) throw MatrixException.NotFound("Unknown media (this server does not federate)");
        var media = context.RequestServices.GetRequiredService<MediaStore>();
        var wait = QueryParameters.Optional(context, "timeout_ms") is { } text
            ? long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var ms)
                ? TimeSpan.FromMilliseconds(Math.Min(ms, (long)MaxUploadWait.TotalMilliseconds))
                : throw MatrixException.InvalidParam("'timeout_ms' must be a non-negative integer")
            : DefaultUploadWait;
        var deadline = DateTime.UtcNow + wait;
        while (true)
        {
            // Polled: content reserved by one front end arrives through another, and waiting downloads are rare.
            var info = await media.FindAsync(mediaId) ?? throw MatrixException.NotFound("Unknown media");
            if (info.Uploaded) return info;
            if (DateTime.UtcNow >= deadline)
                throw new MatrixException(ErrorCodes.NotYetUploaded, "The content of this media has not been uploaded yet", 504);
            await Task.Delay(UploadPollInterval, context.RequestAborted);
        }
    }

    private static int PositiveDimension(HttpContext context, string name)
    {
        var text = QueryParameters.Optional(context, name) ?? throw MatrixException.MissingParam($"Missing '{name}'");
        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value is > 0 and <= 10_000
            ? value
            : throw MatrixException.InvalidParam($"'{name}' must be a positive integer");
    }

    /// <summary><c>inline</c> for types a browser shows without running anything, else <c>attachment</c>, with the file
    /// name (RFC 6266: plain when it is safe ASCII, else percent-encoded UTF-8).</summary>
    private static string ContentDisposition(string? contentType, string? fileName)
    {
        var baseType = contentType?.Split(';')[0].Trim() ?? "";
        var disposition = InlineContentTypes.Contains(baseType) ? "inline" : "attachment";
        if (string.IsNullOrEmpty(fileName)) return disposition;
        var plain = fileName.All(c => c is >= ' ' and < (char)0x7f and not ('"' or '\\' or ';' or ','));
        return plain ? $"{disposition}; filename=\"{fileName}\"" : $"{disposition}; filename*=utf-8''{Uri.EscapeDataString(fileName)}";
    }

    private static void SecurityHeaders(HttpResponse response)
    {
        var headers = response.Headers;
        headers.ContentSecurityPolicy = ContentSecurityPolicy;
        headers.XContentTypeOptions = "nosniff";
        headers["Cross-Origin-Resource-Policy"] = "cross-origin";
        headers.CacheControl = "public, max-age=86400, s-maxage=86400";
    }

    private static string Mxc(HomeserverOptions options, string mediaId) => $"mxc://{options.ServerName}/{mediaId}";
}

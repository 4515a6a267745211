using System.Net;
using System.Text.Json.Nodes;
using AngleSharp.Html.Parser;
using Homeserver.Errors;
using Homeserver.Outbound;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;
using SkiaSharp;

namespace Homeserver.Media;

/// <summary>
/// <c>GET .../preview_url</c> (spec "URL previews"): fetches the page on a user's behalf, within a size and time
/// bound, through a connection policy that refuses private, loopback and link-local addresses unless the operator
/// allowed them (checked on the address connected to, after name resolution and on every redirect, so neither a name
/// nor a redirect can lead inside). HTML is read with AngleSharp for its OpenGraph properties (falling back to
/// <c>&lt;title&gt;</c> and the description meta); an image (the page's <c>og:image</c>, or the URL itself) is stored
/// in the media repository and named by its <c>mxc://</c> URI, as Synapse does, so clients never fetch the site
/// themselves. Previews are cached per URL in the database for every front end.
/// </summary>
public sealed class UrlPreviewer(IHttpClientFactory clients, MediaStore media, NpgsqlDataSource db, IOptions<HomeserverOptions> options,
    ILogger<UrlPreviewer> logger)
{
    public const string HttpClientName = "url-preview";

    /// <summary>Longest URL previewed; page URLs longer than this are not links people post.</summary>
    public const int MaxUrlLength = 2048;

    /// <summary>Most OpenGraph properties kept from one page: a hostile page cannot make the answer large.</summary>
    private const int MaxProperties = 50;

    private const int MaxPropertyLength = 1000;

    public async Task<JsonObject> PreviewAsync(string url, string requester, CancellationToken ct)
    {
        var settings = options.Value.Media;
        if (!settings.EnableUrlPreviews) throw MatrixException.NotFound("URL previews are disabled on this server");
        if (url.Length > MaxUrlLength || !Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            throw MatrixException.InvalidParam("'url' must be an http or https URL");
        if (await CachedAsync(url, settings.PreviewCacheLifetime) is { } cached) return cached;

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(settings.PreviewTimeout);
        JsonObject og;
        try
        {
            og = await FetchAsync(uri, requester, timeout.Token);
        }
        catch (HttpRequestException e) when (OutboundAddressRefusedException.IsRefusal(e))
        {
            throw MatrixException.Forbidden($"Refusing to preview {uri.Host}: it is in a private or reserved network");
        }
        catch (Exception e) when (e is HttpRequestException or IOException || (e is OperationCanceledException && !ct.IsCancellationRequested))
        {
            logger.LogInformation("URL preview of {Host} failed: {Error}", uri.Host, e.Message);
            throw new MatrixException(ErrorCodes.Unknown, "Failed to download the page to preview", 502);
        }
        await StoreAsync(url, og);
        return og;
    }

    private async Task<JsonObject> FetchAsync(Uri uri, string requester, CancellationToken ct)
    {
        var page = await DownloadAsync(uri, ct);
        if (page is null) return [];
        if (Thumbnailer.CanThumbnail(page.ContentType)) return await ImagePropertiesAsync(page, requester, ct);
        if (page.ContentType is not ("text/html" or "application/xhtml+xml")) return [];

        var document = await new HtmlParser().ParseDocumentAsync(new MemoryStream(page.Content), ct);
        var og = new JsonObject();
        foreach (var meta in document.QuerySelectorAll("meta"))
        {
            var key = meta.GetAttribute("property") ?? meta.GetAttribute("name");
            var content = meta.GetAttribute("content");
            if (key is null || content is null || !key.StartsWith("og:", StringComparison.Ordinal) || og.ContainsKey(key)) continue;
            if (og.Count >= MaxProperties) break;
            og[key] = Bounded(content);
        }
        if (!og.ContainsKey("og:title") && document.Title is { Length: > 0 } title) og["og:title"] = Bounded(title.Trim());
        if (!og.ContainsKey("og:description")
            && document.QuerySelector("meta[name='description']")?.GetAttribute("content") is { Length: > 0 } description)
            og["og:description"] = Bounded(description);

        og.Remove("og:image");
        if (document.QuerySelector("meta[property='og:image'], meta[name='og:image']")?.GetAttribute("content") is { Length: > 0 } image
            && Uri.TryCreate(page.Url, image, out var imageUri) && imageUri.Scheme is "http" or "https")
        {
            try
            {
                if (await DownloadAsync(imageUri, ct) is { } picture && Thumbnailer.CanThumbnail(picture.ContentType))
                    foreach (var (k, v) in await ImagePropertiesAsync(picture, requester, ct)) og[k] = v?.DeepClone();
            }
            catch (Exception e) when (e is HttpRequestException or IOException)
            {
                // The page previews without its image.
            }
        }
        return og;
    }

    private static string Bounded(string value) => value.Length > MaxPropertyLength ? value[..MaxPropertyLength] : value;

    private sealed record Download(Uri Url, string? ContentType, byte[] Content);

    /// <summary>GET within the size bound; null when the server answered with an error status.</summary>
    private async Task<Download?> DownloadAsync(Uri uri, CancellationToken ct)
    {
        var max = options.Value.Media.MaxPreviewBytes;
        var client = clients.CreateClient(HttpClientName);
        using var response = await client.GetAsync(uri, HttpCompletionOption.ResponseHeadersRead, ct);
        if (!response.IsSuccessStatusCode) return null;
        await using var body = await response.Content.ReadAsStreamAsync(ct);
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await body.ReadAsync(chunk, ct)) > 0)
        {
            // A page is read up to the bound and previewed from what arrived (its head is at the start); an image that
            // does not fit is not previewed.
            var room = max - (int)buffer.Length;
            buffer.Write(chunk, 0, Math.Min(read, room));
            if (read >= room) break;
        }
        var contentType = response.Content.Headers.ContentType?.MediaType?.ToLowerInvariant();
        if (buffer.Length >= max && Thumbnailer.CanThumbnail(contentType)) return null;
        return new Download(response.RequestMessage?.RequestUri ?? uri, contentType, buffer.ToArray());
    }

    /// <summary>Stores an image in the media repository and describes it as Synapse does.</summary>
    private async Task<JsonObject> ImagePropertiesAsync(Download image, string requester, CancellationToken ct)
    {
        var mediaId = MediaStore.NewMediaId();
        var size = await media.StoreAsync(mediaId, requester, reserved: false, Path.GetFileName(image.Url.AbsolutePath), image.ContentType,
            new MemoryStream(image.Content), ct);
        var og = new JsonObject
        {
            ["og:image"] = $"mxc://{options.Value.ServerName}/{mediaId}",
            ["og:image:type"] = image.ContentType,
            ["matrix:image:size"] = size,
        };
        using var codec = SKCodec.Create(new SKMemoryStream(image.Content));
        if (codec is not null)
        {
            og["og:image:width"] = codec.Info.Width;
            og["og:image:height"] = codec.Info.Height;
        }
        return og;
    }

    private async Task<JsonObject?> CachedAsync(string url, TimeSpan lifetime)
    {
        await using var cmd = db.CreateCommand("SELECT og::text FROM url_previews WHERE url = $1 AND fetched_at > now() - $2");
        cmd.Parameters.AddWithValue(url);
        cmd.Parameters.AddWithValue(lifetime);
        return await cmd.ExecuteScalarAsync() is string json ? JsonNode.Parse(json) as JsonObject : null;
    }

    private async Task StoreAsync(string url, JsonObject og)
    {
        await using var cmd = db.CreateCommand(
            """
            INSERT INTO url_previews (url, fetched_at, og) VALUES ($1, now(), $2)
            ON CONFLICT (url) DO UPDATE SET fetched_at = excluded.fetched_at, og = excluded.og
            """);
        cmd.Parameters.AddWithValue(url);
        cmd.Parameters.Add(new NpgsqlParameter { Value = og.ToJsonString(), NpgsqlDbType = NpgsqlDbType.Jsonb });
        await cmd.ExecuteNonQueryAsync();
    }
}

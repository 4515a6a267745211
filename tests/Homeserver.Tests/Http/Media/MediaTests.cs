using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using Npgsql;
using SkiaSharp;

namespace Homeserver.Tests.Http.Media;

/// <summary>A 2-silo cluster with a low pixel limit (so a modest image is "too large" to thumbnail).</summary>
public sealed class MediaCluster : TwoSiloCluster
{
    public const long MaxImagePixels = 2_000_000;

    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?>
    {
        ["Homeserver:Media:MaxImagePixels"] = MaxImagePixels.ToString(),
        ["Homeserver:Media:MaxUploadBytes"] = (1024 * 1024).ToString(),
    };
}

/// <summary>
/// The content repository (spec: "Content repository"): uploads through one front end served by the other, the
/// headers that keep media from running as a page, authenticated and legacy paths, asynchronous uploads, the size
/// limit, thumbnails (decoded and measured) and their reuse.
/// </summary>
public sealed class MediaTests(MediaCluster fixture) : IClassFixture<MediaCluster>
{
    private const string Upload = "/_matrix/media/v3/upload";

    internal static byte[] Png(int width, int height, SKColor color, SKEncodedImageFormat format = SKEncodedImageFormat.Png)
    {
        using var bitmap = new SKBitmap(width, height);
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(color);
            using var paint = new SKPaint { Color = SKColors.Black };
            canvas.DrawRect(0, 0, width / 2f, height / 2f, paint);
        }
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(format, 90);
        return data.ToArray();
    }

    internal static async Task<string> UploadAsync(MatrixTestClient user, byte[] content, string contentType, string? fileName = null)
    {
        using var body = new ByteArrayContent(content);
        body.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        var path = fileName is null ? Upload : $"{Upload}?filename={Uri.EscapeDataString(fileName)}";
        using var response = await user.Http.PostAsync(path, body);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        var uri = JsonNode.Parse(text)!["content_uri"]!.GetValue<string>();
        Assert.StartsWith("mxc://localhost/", uri);
        return uri["mxc://".Length..];
    }

    private static async Task<HttpResponseMessage> GetAsync(HttpClient http, string path, string? token = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (token is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return await http.SendAsync(request);
    }

    [Fact]
    public async Task Content_uploaded_through_one_front_end_is_served_by_the_other_with_safe_headers()
    {
        var alice = await fixture.UserAsync("media-up");
        var png = Png(40, 30, SKColors.Red);
        var id = await UploadAsync(alice, png, "image/png", "cat picture.png");
        var anonymous = new HttpClient { BaseAddress = new Uri(fixture.B.BaseUrl) };

        using var legacy = await GetAsync(anonymous, $"/_matrix/media/v3/download/{id}");
        Assert.Equal(HttpStatusCode.OK, legacy.StatusCode);
        Assert.Equal(png, await legacy.Content.ReadAsByteArrayAsync());
        Assert.Equal("image/png", legacy.Content.Headers.ContentType!.MediaType);
        Assert.Equal("inline; filename=\"cat picture.png\"", legacy.Content.Headers.GetValues("Content-Disposition").Single());
        Assert.Equal("nosniff", legacy.Headers.GetValues("X-Content-Type-Options").Single());
        Assert.Contains("sandbox", legacy.Headers.GetValues("Content-Security-Policy").Single());

        // Authenticated media needs a token; the name in the path wins over the uploaded one.
        using var unauthenticated = await GetAsync(anonymous, $"/_matrix/client/v1/media/download/{id}");
        Assert.Equal(HttpStatusCode.Unauthorized, unauthenticated.StatusCode);
        using var named = await GetAsync(anonymous, $"/_matrix/client/v1/media/download/{id}/other%20name.png", alice.AccessToken);
        Assert.Equal(png, await named.Content.ReadAsByteArrayAsync());
        Assert.Equal("inline; filename=\"other name.png\"", named.Content.Headers.GetValues("Content-Disposition").Single());

        // Old clients' r0 path.
        using var r0 = await GetAsync(anonymous, $"/_matrix/media/r0/download/{id}");
        Assert.Equal(png, await r0.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task Types_a_browser_could_run_are_attachments_and_text_gets_a_charset()
    {
        var alice = await fixture.UserAsync("media-html");
        var html = await UploadAsync(alice, "<script>alert(1)</script>"u8.ToArray(), "text/html", "page.html");
        using var page = await GetAsync(fixture.B.Http, $"/_matrix/media/v3/download/{html}");
        Assert.StartsWith("attachment", page.Content.Headers.GetValues("Content-Disposition").Single());
        Assert.Equal("utf-8", page.Content.Headers.ContentType!.CharSet);

        var text = await UploadAsync(alice, Encoding.UTF8.GetBytes("héllo"), "text/plain", "naïve.txt");
        using var plain = await GetAsync(fixture.B.Http, $"/_matrix/media/v3/download/{text}");
        Assert.Equal("inline; filename*=utf-8''na%C3%AFve.txt", plain.Content.Headers.GetValues("Content-Disposition").Single());
        Assert.Equal("héllo", await plain.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Unknown_media_and_bad_requests_get_matrix_errors()
    {
        var alice = await fixture.UserAsync("media-errors");
        var unknown = await alice.GetAsync("/_matrix/client/v1/media/download/localhost/doesnotexist");
        Assert.Equal((404, "M_NOT_FOUND"), (unknown.StatusCode, unknown.ErrCode));
        var remote = await alice.GetAsync("/_matrix/client/v1/media/download/elsewhere.example/abc");
        Assert.Equal((404, "M_NOT_FOUND"), (remote.StatusCode, remote.ErrCode));

        var config = await alice.GetAsync("/_matrix/client/v1/media/config");
        Assert.Equal(1024 * 1024, config["m.upload.size"].GetValue<long>());
        var legacyConfig = await alice.GetAsync("/_matrix/media/v3/config");
        Assert.Equal(1024 * 1024, legacyConfig["m.upload.size"].GetValue<long>());
        var anonymousConfig = await fixture.A.Http.GetJsonAsync("/_matrix/client/v1/media/config");
        Assert.Equal((401, "M_MISSING_TOKEN"), (anonymousConfig.StatusCode, anonymousConfig.ErrCode));

        using var noToken = await fixture.A.Http.PostAsync(Upload, new ByteArrayContent([1, 2, 3]));
        Assert.Equal(HttpStatusCode.Unauthorized, noToken.StatusCode);

        var id = await UploadAsync(alice, Png(10, 10, SKColors.Blue), "image/png");
        foreach (var query in new[] { "width=abc&height=10", "width=10", "width=-5&height=10", "width=10&height=10&method=stretch" })
        {
            var bad = await alice.GetAsync($"/_matrix/client/v1/media/thumbnail/{id}?{query}");
            Assert.Equal(400, bad.StatusCode);
            Assert.NotNull(bad.ErrCode);
        }
        var text = await UploadAsync(alice, "just text"u8.ToArray(), "text/plain");
        var notImage = await alice.GetAsync($"/_matrix/client/v1/media/thumbnail/{text}?width=32&height=32");
        Assert.Equal(400, notImage.StatusCode);
        var garbage = await UploadAsync(alice, "not really a png"u8.ToArray(), "image/png");
        var undecodable = await alice.GetAsync($"/_matrix/client/v1/media/thumbnail/{garbage}?width=32&height=32");
        Assert.Equal(400, undecodable.StatusCode);
    }

    [Fact]
    public async Task Uploads_beyond_the_limit_are_refused_whether_declared_or_streamed()
    {
        var alice = await fixture.UserAsync("media-large");
        var tooLarge = new byte[1024 * 1024 + 1];
        using (var declared = await alice.Http.PostAsync(Upload, new ByteArrayContent(tooLarge)))
        {
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, declared.StatusCode);
            Assert.Equal("M_TOO_LARGE", JsonNode.Parse(await declared.Content.ReadAsStringAsync())!["errcode"]!.GetValue<string>());
        }
        // No Content-Length: the limit is found while streaming, and nothing of the upload is kept.
        var before = await CountAsync("SELECT count(*) FROM media");
        using var streamed = new StreamContent(new GeneratedStream(tooLarge.Length));
        using (var response = await alice.Http.PostAsync(Upload, streamed))
        {
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        }
        Assert.Equal(before, await CountAsync("SELECT count(*) FROM media"));
    }

    [Fact]
    public async Task Reserved_ids_take_their_content_once_from_their_uploader_and_downloads_wait_for_it()
    {
        var alice = await fixture.UserAsync("media-async");
        var bob = await fixture.UserAsync("media-async-other");
        var created = (await alice.PostAsync("/_matrix/media/v1/create", new { })).EnsureSuccess();
        var id = created["content_uri"].GetValue<string>()["mxc://".Length..];
        Assert.True(created["unused_expires_at"].GetValue<long>() > DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());

        var notYet = await alice.On(fixture.B).GetAsync($"/_matrix/client/v1/media/download/{id}?timeout_ms=0");
        Assert.Equal((504, "M_NOT_YET_UPLOADED"), (notYet.StatusCode, notYet.ErrCode));

        // A download started before the content arrives gets it once it does (through the other front end).
        var waiting = GetAsync(fixture.B.Http, $"/_matrix/client/v1/media/download/{id}?timeout_ms=20000", alice.AccessToken);
        await Task.Delay(300);
        using (var stolen = await bob.Http.PutAsync($"{Upload}/{id}", new ByteArrayContent([9])))
            Assert.Equal(HttpStatusCode.Forbidden, stolen.StatusCode);
        var content = Encoding.UTF8.GetBytes("later content");
        using (var body = new ByteArrayContent(content))
        {
            body.Headers.ContentType = new MediaTypeHeaderValue("text/plain");
            using var put = await alice.Http.PutAsync($"{Upload}/{id}?filename=later.txt", body);
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        }
        using (var downloaded = await waiting)
        {
            Assert.Equal(HttpStatusCode.OK, downloaded.StatusCode);
            Assert.Equal(content, await downloaded.Content.ReadAsByteArrayAsync());
        }
        using (var again = await alice.Http.PutAsync($"{Upload}/{id}", new ByteArrayContent([1])))
        {
            Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
            Assert.Equal("M_CANNOT_OVERWRITE_MEDIA", JsonNode.Parse(await again.Content.ReadAsStringAsync())!["errcode"]!.GetValue<string>());
        }
        using (var unknown = await alice.Http.PutAsync($"{Upload}/localhost/nosuchreservation", new ByteArrayContent([1])))
            Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);

        // At most five reservations wait at once.
        for (var i = 0; i < 5; i++) (await bob.PostAsync("/_matrix/media/v1/create", new { })).EnsureSuccess();
        var sixth = await bob.PostAsync("/_matrix/media/v1/create", new { });
        Assert.Equal((429, "M_LIMIT_EXCEEDED"), (sixth.StatusCode, sixth.ErrCode));
    }

    [Fact]
    public async Task Thumbnails_crop_and_scale_to_the_standard_sizes_and_are_made_once()
    {
        var alice = await fixture.UserAsync("media-thumb");
        var id = await UploadAsync(alice, Png(1000, 500, SKColors.Green), "image/png");

        using (var crop = await GetAsync(fixture.B.Http, $"/_matrix/client/v1/media/thumbnail/{id}?width=90&height=90&method=crop", alice.AccessToken))
        {
            Assert.Equal(HttpStatusCode.OK, crop.StatusCode);
            Assert.Equal("image/png", crop.Content.Headers.ContentType!.MediaType);
            using var decoded = SKBitmap.Decode(await crop.Content.ReadAsByteArrayAsync());
            Assert.Equal((96, 96), (decoded.Width, decoded.Height));
        }
        using (var scale = await GetAsync(fixture.A.Http, $"/_matrix/media/v3/thumbnail/{id}?width=300&height=200&method=scale"))
        {
            using var decoded = SKBitmap.Decode(await scale.Content.ReadAsByteArrayAsync());
            // The 320x240 box, the aspect ratio kept: 2:1.
            Assert.Equal((320, 160), (decoded.Width, decoded.Height));
            // The top-left quarter of the source is black, the rest green: the scaled image keeps that layout.
            Assert.Equal(SKColors.Black, decoded.GetPixel(10, 10));
            Assert.Equal(SKColors.Green, decoded.GetPixel(300, 150));
        }
        // A request for the same size again is served from the stored thumbnail.
        using (await GetAsync(fixture.A.Http, $"/_matrix/media/v3/thumbnail/{id}?width=96&height=96&method=crop")) { }
        Assert.Equal(2, await CountAsync($"SELECT count(*) FROM media_thumbnails WHERE media_id = '{id.Split('/')[1]}'"));

        var jpeg = await UploadAsync(alice, Png(800, 800, SKColors.White, SKEncodedImageFormat.Jpeg), "image/jpeg");
        using var jpegThumb = await GetAsync(fixture.A.Http, $"/_matrix/media/v3/thumbnail/{jpeg}?width=32&height=32&method=crop");
        Assert.Equal("image/jpeg", jpegThumb.Content.Headers.ContentType!.MediaType);
        using var small = SKBitmap.Decode(await jpegThumb.Content.ReadAsByteArrayAsync());
        Assert.Equal((32, 32), (small.Width, small.Height));
    }

    [Fact]
    public async Task An_image_with_too_many_pixels_is_not_thumbnailed()
    {
        var alice = await fixture.UserAsync("media-huge");
        // 2,250,000 pixels against a limit of 2,000,000; a flat image compresses to a few kilobytes.
        var id = await UploadAsync(alice, Png(1500, 1500, SKColors.White), "image/png");
        var refused = await alice.GetAsync($"/_matrix/client/v1/media/thumbnail/{id}?width=32&height=32&method=crop");
        Assert.Equal((413, "M_TOO_LARGE"), (refused.StatusCode, refused.ErrCode));
    }

    [Fact]
    public async Task An_admin_deletes_media_and_erasing_an_account_deletes_its_uploads()
    {
        var alice = await fixture.UserAsync("media-erase");
        var id = await UploadAsync(alice, [1, 2, 3], "application/octet-stream");
        var notAdmin = await alice.DeleteAsync($"/_synapse/admin/v1/media/{id}");
        Assert.Equal((403, "M_FORBIDDEN"), (notAdmin.StatusCode, notAdmin.ErrCode));

        (await alice.PostAsync("/_matrix/client/v3/account/deactivate", new
        {
            erase = true,
            auth = new { type = "m.login.password", identifier = new { type = "m.id.user", user = alice.UserId }, password = alice.Password },
        })).EnsureSuccess();
        using var gone = await GetAsync(fixture.B.Http, $"/_matrix/media/v3/download/{id}");
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
    }

    private async Task<long> CountAsync(string sql)
    {
        await using var cmd = fixture.Cluster.Database.CreateCommand(sql);
        return (long)(await cmd.ExecuteScalarAsync())!;
    }
}

/// <summary>A stream of <paramref name="length"/> bytes made as it is read (never held whole; each byte a function of
/// its position, so reading in any pieces gives the same content), not seekable, so an HTTP client sends it chunked.</summary>
public sealed class GeneratedStream(long length) : Stream
{
    private long _position;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => _position; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override int Read(byte[] buffer, int offset, int count)
    {
        var n = (int)Math.Min(count, length - _position);
        for (var i = 0; i < n; i++) buffer[offset + i] = (byte)(((ulong)(_position + i) * 2654435761UL) >> 13);
        _position += n;
        return n;
    }

    /// <summary>The SHA-256 of the whole stream, computed by generating it again.</summary>
    public static byte[] Hash(long length)
    {
        using var stream = new GeneratedStream(length);
        return SHA256.HashData(stream);
    }
}

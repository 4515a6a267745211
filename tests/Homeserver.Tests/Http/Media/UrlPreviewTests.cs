using System.Net;
using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using SkiaSharp;

namespace Homeserver.Tests.Http.Media;

/// <summary>A cluster that may preview pages on 127.0.0.1 only (the rest of loopback stays refused), with a page
/// server of its own there.</summary>
public sealed class PreviewCluster : TwoSiloCluster, IAsyncLifetime
{
    private WebApplication? _pages;
    public string PageTitle { get; set; } = "The first title";
    public string BaseUrl { get; private set; } = "";
    public int Port { get; private set; }

    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?>
    {
        ["Homeserver:Media:PreviewAllowedNetworks:0"] = "127.0.0.1/32",
    };

    async Task IAsyncLifetime.InitializeAsync()
    {
        await InitializeAsync();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0));
        _pages = builder.Build();
        var picture = MediaTests.Png(64, 48, SKColors.Orange);
        _pages.MapGet("/article", () => Results.Content($"""
            <!doctype html><html><head><title>{PageTitle}</title>
            <meta property="og:title" content="{PageTitle}">
            <meta property="og:type" content="article">
            <meta name="description" content="What the article says">
            <meta property="og:image" content="/picture.png">
            </head><body><p>Hello</p></body></html>
            """, "text/html; charset=utf-8"));
        _pages.MapGet("/plain", () => Results.Content("<html><head><title>Only a title</title></head></html>", "text/html"));
        _pages.MapGet("/picture.png", () => Results.Bytes(picture, "image/png"));
        _pages.MapGet("/redirect-inside", (HttpContext c) => Results.Redirect($"http://127.0.0.2:{Port}/article"));
        await _pages.StartAsync();
        BaseUrl = _pages.Urls.Single();
        Port = new Uri(BaseUrl).Port;
    }

    async Task IAsyncLifetime.DisposeAsync()
    {
        if (_pages is not null) await _pages.DisposeAsync();
        await DisposeAsync();
    }
}

/// <summary>URL previews (spec: "URL previews"): OpenGraph read with an HTML parser, the page's image stored as media,
/// the cache, and the refusal of addresses inside the operator's network, redirects included.</summary>
public sealed class UrlPreviewTests(PreviewCluster fixture) : IClassFixture<PreviewCluster>
{
    private static string Preview(string url) => $"/_matrix/client/v1/media/preview_url?url={Uri.EscapeDataString(url)}";

    [Fact]
    public async Task A_page_previews_with_its_open_graph_properties_and_its_image_as_media()
    {
        var alice = await fixture.UserAsync("preview");
        var og = (await alice.GetAsync(Preview($"{fixture.BaseUrl}/article"))).EnsureSuccess().Body!.AsObject();
        Assert.Equal(fixture.PageTitle, og["og:title"]!.GetValue<string>());
        Assert.Equal("article", og["og:type"]!.GetValue<string>());
        Assert.Equal("What the article says", og["og:description"]!.GetValue<string>());
        var image = og["og:image"]!.GetValue<string>();
        Assert.StartsWith("mxc://localhost/", image);
        Assert.Equal(64, og["og:image:width"]!.GetValue<int>());
        Assert.Equal("image/png", og["og:image:type"]!.GetValue<string>());
        using var picture = await fixture.B.Http.GetAsync($"/_matrix/media/v3/download/{image["mxc://".Length..]}");
        using var decoded = SKBitmap.Decode(await picture.Content.ReadAsByteArrayAsync());
        Assert.Equal((64, 48), (decoded.Width, decoded.Height));
        Assert.Equal(og["matrix:image:size"]!.GetValue<long>(), picture.Content.Headers.ContentLength);

        var plain = (await alice.On(fixture.B).GetAsync(Preview($"{fixture.BaseUrl}/plain"))).EnsureSuccess();
        Assert.Equal("Only a title", plain["og:title"].GetValue<string>());
        Assert.Null(plain.Body!["og:image"]);
    }

    [Fact]
    public async Task A_preview_is_cached_per_url()
    {
        var alice = await fixture.UserAsync("preview-cache");
        var url = $"{fixture.BaseUrl}/article?cache-test";
        var first = (await alice.GetAsync(Preview(url))).EnsureSuccess()["og:title"].GetValue<string>();
        fixture.PageTitle = "A changed title";
        try
        {
            // Through the other front end too: the cache is the database's.
            var second = (await alice.On(fixture.B).GetAsync(Preview(url))).EnsureSuccess()["og:title"].GetValue<string>();
            Assert.Equal(first, second);
            var fresh = (await alice.GetAsync(Preview($"{fixture.BaseUrl}/article?other"))).EnsureSuccess()["og:title"].GetValue<string>();
            Assert.Equal("A changed title", fresh);
        }
        finally
        {
            fixture.PageTitle = "The first title";
        }
    }

    [Fact]
    public async Task Private_addresses_are_refused_even_behind_a_redirect()
    {
        var alice = await fixture.UserAsync("preview-refused");
        var direct = await alice.GetAsync(Preview($"http://127.0.0.2:{fixture.Port}/article"));
        Assert.Equal((403, "M_FORBIDDEN"), (direct.StatusCode, direct.ErrCode));
        var redirected = await alice.GetAsync(Preview($"{fixture.BaseUrl}/redirect-inside"));
        Assert.Equal((403, "M_FORBIDDEN"), (redirected.StatusCode, redirected.ErrCode));
        var link = await alice.GetAsync(Preview($"http://169.254.169.254/latest/meta-data/"));
        Assert.Equal((403, "M_FORBIDDEN"), (link.StatusCode, link.ErrCode));

        var notHttp = await alice.GetAsync(Preview("file:///etc/passwd"));
        Assert.Equal((400, "M_INVALID_PARAM"), (notHttp.StatusCode, notHttp.ErrCode));
        var missing = await alice.GetAsync("/_matrix/client/v1/media/preview_url");
        Assert.Equal((400, "M_MISSING_PARAM"), (missing.StatusCode, missing.ErrCode));
        var anonymous = await fixture.A.Http.GetJsonAsync(Preview($"{fixture.BaseUrl}/article"));
        Assert.Equal(401, anonymous.StatusCode);
    }
}

using System.Net;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.Media;

/// <summary>Run alone: it watches the process's managed heap, which other tests running at the same time would
/// move.</summary>
[CollectionDefinition(nameof(LargeMediaCollection), DisableParallelization = true)]
public sealed class LargeMediaCollection : ICollectionFixture<TwoSiloCluster>;

/// <summary>
/// A 50 MB upload through one front end and its download through the other stream from and to PostgreSQL: the
/// managed heap never grows by anything near the file's size.
/// </summary>
[Collection(nameof(LargeMediaCollection))]
public sealed class LargeMediaTests(TwoSiloCluster fixture)
{
    private const long FileBytes = 50L * 1024 * 1024;

    /// <summary>Far below the file: an implementation that buffered it (a byte array, a MemoryStream) would pass this
    /// at once.</summary>
    private const long MaxHeapGrowth = 24L * 1024 * 1024;

    [Fact]
    public async Task A_50_MB_file_streams_through_without_sitting_in_memory()
    {
        var alice = await fixture.UserAsync("media-50mb");
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        var baseline = GC.GetTotalMemory(forceFullCollection: true);
        long peak = baseline;
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                peak = Math.Max(peak, GC.GetTotalMemory(false));
                try { await Task.Delay(5, sampling.Token); } catch (OperationCanceledException) { }
            }
        });

        string mediaId;
        using (var content = new StreamContent(new GeneratedStream(FileBytes), 64 * 1024))
        {
            content.Headers.ContentType = new("application/octet-stream");
            using var upload = await alice.Http.PostAsync("/_matrix/media/v3/upload?filename=big.bin", content);
            var text = await upload.Content.ReadAsStringAsync();
            Assert.True(upload.IsSuccessStatusCode, text);
            mediaId = JsonNode.Parse(text)!["content_uri"]!.GetValue<string>()["mxc://".Length..];
        }

        using var request = new HttpRequestMessage(HttpMethod.Get, $"/_matrix/client/v1/media/download/{mediaId}");
        request.Headers.Authorization = new("Bearer", alice.AccessToken);
        using var download = await fixture.B.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, download.StatusCode);
        Assert.Equal(FileBytes, download.Content.Headers.ContentLength);
        await using var body = await download.Content.ReadAsStreamAsync();
        var hash = await SHA256.HashDataAsync(body);

        await sampling.CancelAsync();
        await sampler;
        Assert.Equal(GeneratedStream.Hash(FileBytes), hash);
        var growth = peak - baseline;
        Assert.True(growth < MaxHeapGrowth, $"the managed heap grew by {growth / 1024 / 1024} MB while a {FileBytes / 1024 / 1024} MB file passed");
    }
}

using System.Text.Json;
using Homeserver.Streams;

namespace Homeserver.Caches;

/// <summary>Applies <c>caches</c> stream rows to this silo's caches (runs in the reader, before it advances).</summary>
public sealed class CacheStreamHandler(CacheRegistry caches) : IStreamRowHandler
{
    public string Stream => StreamNames.Caches;

    public void Handle(StreamEntry entry)
    {
        if (entry.Kind != CacheInvalidation.Kind) return;
        var row = JsonSerializer.Deserialize<CacheInvalidation>(entry.Payload, CacheInvalidator.Json);
        if (row is null) return;
        if (row.Keys.Length == 0) caches.InvalidateAll(row.Cache);
        else foreach (var key in row.Keys) caches.Invalidate(row.Cache, key);
    }
}

/// <summary>Invalidates cache entries on every silo through the <c>caches</c> stream.</summary>
public sealed class CacheInvalidator(IGrainFactory grains)
{
    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>A row to add to an append, so the invalidation commits with the change that causes it.</summary>
    public static StreamRow Row(string cache, params string[] keys) =>
        new(CacheInvalidation.Kind, null, JsonSerializer.Serialize(new CacheInvalidation(cache, keys), Json));

    private static readonly TimeSpan ReadYourWritesTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Read-your-writes for invalidations (revoked tokens among them): once this returns, this silo has applied
    /// the <c>caches</c> stream up to <paramref name="position"/> and no longer serves what it invalidated. 0: nothing to wait for.</summary>
    public static async Task WaitAppliedAsync(StreamNotifier notifier, long position, CancellationToken ct)
    {
        if (position <= 0) return;
        await notifier.WaitForTokenAsync(notifier.Current.Advance(StreamNames.Caches, 0, position), ReadYourWritesTimeout, ct);
    }

    /// <summary>Returns once the invalidation is committed; every silo applies it before its position passes it.</summary>
    public Task<AppendResult> InvalidateAsync(string cache, params string[] keys) =>
        grains.GetGrain<IStreamWriterGrain>(StreamNames.WriterKey(StreamNames.Caches, 0)).AppendAsync([Row(cache, keys)]);
}

using Homeserver.Caches;

namespace Homeserver.Keys;

/// <summary>
/// A device's one-time key counts and unused fallback key types, which every /sync of that device carries. Cached
/// per silo; uploads and claims invalidate the device's entry on every silo through the <c>caches</c> stream.
/// </summary>
public sealed class KeyCountCache(CacheRegistry caches, CacheInvalidator invalidator, KeyRepository keys)
{
    public const string CacheName = "keys.device_key_counts";
    private readonly SiloCache<DeviceKeyCounts> _cache = caches.Get<DeviceKeyCounts>(CacheName, 100_000);

    public sealed record DeviceKeyCounts(SortedDictionary<string, long> OneTimeKeys, IReadOnlyList<string> UnusedFallbackTypes);

    private static string Key(string userId, string deviceId) => $"{userId}|{deviceId}";

    public ValueTask<DeviceKeyCounts> GetAsync(string userId, string deviceId) =>
        _cache.GetOrLoadAsync(Key(userId, deviceId), async _ => new DeviceKeyCounts(
            await keys.CountOneTimeKeysAsync(userId, deviceId),
            await keys.GetUnusedFallbackAlgorithmsAsync(userId, deviceId)));

    /// <summary>After the device's keys changed in the database (upload, claim, device deleted).</summary>
    public Task InvalidateAsync(string userId, IEnumerable<string> deviceIds) =>
        invalidator.InvalidateAsync(CacheName, deviceIds.Select(d => Key(userId, d)).Distinct().ToArray());
}

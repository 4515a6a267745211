using Homeserver.Caches;
using Npgsql;

namespace Homeserver.Sync;

/// <summary>Users' stored sync filters (<c>POST/GET /user/{userId}/filter</c>), kept as the exact text sent.
/// Filters never change once stored, so a cached one is never stale.</summary>
public sealed class FilterStore(NpgsqlDataSource db, CacheRegistry caches)
{
    private readonly SiloCache<string?> _cache = caches.Get<string?>("sync.filters", 10_000);

    public async Task<string> CreateAsync(string userId, string json)
    {
        await using var cmd = db.CreateCommand("INSERT INTO user_filters (user_id, json) VALUES ($1, $2) RETURNING filter_id");
        cmd.Parameters.AddWithValue(userId);
        cmd.Parameters.AddWithValue(json);
        var id = (long)(await cmd.ExecuteScalarAsync())!;
        return id.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>The filter's JSON text, or null when the user has no such filter.</summary>
    public async Task<string?> GetAsync(string userId, string filterId)
    {
        if (!long.TryParse(filterId, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var id)) return null;
        return await _cache.GetOrLoadAsync($"{userId}|{id}", async _ =>
        {
            await using var cmd = db.CreateCommand("SELECT json FROM user_filters WHERE user_id = $1 AND filter_id = $2");
            cmd.Parameters.AddWithValue(userId);
            cmd.Parameters.AddWithValue(id);
            return await cmd.ExecuteScalarAsync() as string;
        });
    }
}

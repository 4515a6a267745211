using System.Text.Json;
using System.Text.Json.Nodes;
using Homeserver.Caches;
using Homeserver.Streams;
using Npgsql;

namespace Homeserver.Profile;

/// <summary>A user's profile as served: the display name defaults to the localpart until the user changes it.</summary>
public sealed record UserProfile(string? DisplayName, string? AvatarUrl);

/// <summary>
/// Profiles, read through this silo's <see cref="CacheName"/> cache, which profile changes invalidate on every silo
/// through the <c>caches</c> stream (<see cref="ProfileRows"/>).
/// </summary>
public sealed class ProfileStore(NpgsqlDataSource db, CacheRegistry caches)
{
    public const string CacheName = "profiles";

    /// <summary>The profile, or null when the user does not exist.</summary>
    public async Task<UserProfile?> GetAsync(string userId)
    {
        var cache = caches.Get<UserProfile>(CacheName);
        if (cache.TryGet(userId, out var hit)) return hit;
        var generation = cache.Generation;
        await using var cmd = db.CreateCommand(
            "SELECT p.user_id IS NOT NULL, p.displayname, p.avatar_url FROM users u LEFT JOIN profiles p ON p.user_id = u.user_id WHERE u.user_id = $1");
        cmd.Parameters.AddWithValue(userId);
        await using var reader = await cmd.ExecuteReaderAsync();
        // Unknown users are not cached: registration does not invalidate this cache.
        if (!await reader.ReadAsync()) return null;
        var profile = reader.GetBoolean(0)
            ? new UserProfile(reader.IsDBNull(1) ? null : reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2))
            : new UserProfile(Localpart(userId), null);
        cache.Store(userId, profile, generation);
        return profile;
    }

    /// <summary>Adds the user's display name and avatar to membership content that has none (joins and invites carry
    /// them, as in Synapse).</summary>
    public async Task AddToMembershipAsync(JsonObject content, string userId)
    {
        if (await GetAsync(userId) is not { } profile) return;
        if (profile.DisplayName is not null && content["displayname"] is null) content["displayname"] = profile.DisplayName;
        if (profile.AvatarUrl is not null && content["avatar_url"] is null) content["avatar_url"] = profile.AvatarUrl;
    }

    /// <summary>Rooms the user is joined to now, from the database.</summary>
    public async Task<List<string>> GetJoinedRoomsAsync(string userId)
    {
        await using var cmd = db.CreateCommand("SELECT room_id FROM room_memberships WHERE user_id = $1 AND membership = 'join' ORDER BY room_id");
        cmd.Parameters.AddWithValue(userId);
        var list = new List<string>();
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync()) list.Add(reader.GetString(0));
        return list;
    }

    public static string Localpart(string userId)
    {
        var colon = userId.IndexOf(':');
        return colon > 1 ? userId[1..colon] : userId.TrimStart('@');
    }
}

/// <summary>The <c>caches</c> stream row that stores a profile (kind <c>profile.set</c>) and its invalidation.</summary>
public static class ProfileRows
{
    public const string Kind = "profile.set";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public sealed record ProfileSet(string UserId, string? DisplayName, string? AvatarUrl);

    public static StreamRow[] Set(string userId, UserProfile profile) =>
    [
        new(Kind, userId, JsonSerializer.Serialize(new ProfileSet(userId, profile.DisplayName, profile.AvatarUrl), Json)),
        CacheInvalidator.Row(ProfileStore.CacheName, userId),
    ];

    internal static ProfileSet Read(StreamEntry entry) =>
        JsonSerializer.Deserialize<ProfileSet>(entry.Payload, Json) ?? throw new InvalidOperationException("Empty profile row");
}

public sealed class ProfileSetPersister : IStreamRowPersister
{
    public string Kind => ProfileRows.Kind;

    public void AddCommands(NpgsqlBatch batch, StreamEntry entry)
    {
        var row = ProfileRows.Read(entry);
        batch.BatchCommands.Add(Keys.DeviceListChangePersister.Command(
            """
            INSERT INTO profiles (user_id, displayname, avatar_url) VALUES ($1, $2, $3)
            ON CONFLICT (user_id) DO UPDATE SET displayname = EXCLUDED.displayname, avatar_url = EXCLUDED.avatar_url
            """, row.UserId, row.DisplayName, row.AvatarUrl));
    }
}

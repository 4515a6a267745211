using System.Text.Json;
using Homeserver.Caches;
using Homeserver.Streams;
using Npgsql;

namespace Homeserver.Accounts;

/// <summary>
/// Rows of the <c>caches</c> stream that revoke credentials. Each is appended together with the
/// <see cref="CacheInvalidator.Row"/> for the revoked token hashes, so the database change and every silo's cache
/// invalidation commit in one transaction.
/// </summary>
public static class AccountRows
{
    public const string TokenCache = "access_tokens";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>Devices (and their tokens) deleted.</summary>
    public sealed record DevicesDeleted(string UserId, string[] DeviceIds);

    /// <summary>Tokens revoked while their device stays (a login that reuses a device id).</summary>
    public sealed record TokensRevoked(string UserId, string[] TokenHashes);

    public static StreamRow[] DeleteDevices(string userId, string[] deviceIds, IEnumerable<byte[]> tokenHashes) =>
    [
        new(DevicesDeletedPersister.KindName, userId, JsonSerializer.Serialize(new DevicesDeleted(userId, deviceIds), Json)),
        CacheInvalidator.Row(TokenCache, tokenHashes.Select(AccessTokens.CacheKey).ToArray()),
    ];

    public static StreamRow[] RevokeTokens(string userId, IReadOnlyCollection<byte[]> tokenHashes) =>
    [
        new(TokensRevokedPersister.KindName, userId,
            JsonSerializer.Serialize(new TokensRevoked(userId, tokenHashes.Select(Convert.ToHexString).ToArray()), Json)),
        CacheInvalidator.Row(TokenCache, tokenHashes.Select(AccessTokens.CacheKey).ToArray()),
    ];

    internal static T Read<T>(StreamEntry entry) =>
        JsonSerializer.Deserialize<T>(entry.Payload, Json) ?? throw new InvalidOperationException($"Empty {entry.Kind} row");
}

public sealed class DevicesDeletedPersister : IStreamRowPersister
{
    public const string KindName = "account.devices_deleted";
    public string Kind => KindName;

    public void AddCommands(NpgsqlBatch batch, StreamEntry entry)
    {
        var row = AccountRows.Read<AccountRows.DevicesDeleted>(entry);
        batch.BatchCommands.Add(new NpgsqlBatchCommand("DELETE FROM access_tokens WHERE user_id = $1 AND device_id = ANY($2)")
        {
            Parameters = { new() { Value = row.UserId }, new() { Value = row.DeviceIds } }
        });
        batch.BatchCommands.Add(new NpgsqlBatchCommand("DELETE FROM devices WHERE user_id = $1 AND device_id = ANY($2)")
        {
            Parameters = { new() { Value = row.UserId }, new() { Value = row.DeviceIds } }
        });
        // Where the device connected from goes with it (whois lists current devices only).
        batch.BatchCommands.Add(new NpgsqlBatchCommand("DELETE FROM client_ips WHERE user_id = $1 AND device_id = ANY($2)")
        {
            Parameters = { new() { Value = row.UserId }, new() { Value = row.DeviceIds } }
        });
        // A pusher belongs to the access token (device) that set it up, as in Synapse: it goes with the device.
        batch.BatchCommands.Add(new NpgsqlBatchCommand("DELETE FROM pushers WHERE user_id = $1 AND device_id = ANY($2)")
        {
            Parameters = { new() { Value = row.UserId }, new() { Value = row.DeviceIds } }
        });
        // Peeks are per device (MSC2753): a deleted device peeks no more.
        batch.BatchCommands.Add(new NpgsqlBatchCommand("DELETE FROM room_peeks WHERE user_id = $1 AND device_id = ANY($2)")
        {
            Parameters = { new() { Value = row.UserId }, new() { Value = row.DeviceIds } }
        });
    }
}

public sealed class TokensRevokedPersister : IStreamRowPersister
{
    public const string KindName = "account.tokens_revoked";
    public string Kind => KindName;

    public void AddCommands(NpgsqlBatch batch, StreamEntry entry)
    {
        var row = AccountRows.Read<AccountRows.TokensRevoked>(entry);
        batch.BatchCommands.Add(new NpgsqlBatchCommand("DELETE FROM access_tokens WHERE user_id = $1 AND token_hash IN (SELECT decode(h, 'hex') FROM unnest($2::text[]) AS h)")
        {
            Parameters = { new() { Value = row.UserId }, new() { Value = row.TokenHashes } }
        });
    }
}

using System.Text.Json;
using System.Text.Json.Serialization;
using Homeserver.Streams;
using Npgsql;

namespace Homeserver.Keys;

/// <summary>
/// Rows of the <c>device_lists</c> stream. <see cref="ChangeKind"/> (key: the user whose keys changed) carries the key
/// writes its persister applies in the same transaction and the users whose device lists it changes;
/// <see cref="RoomKind"/> (key: a room id, no domain rows) follows it once per room of that user, so every member's
/// long-poll wakes.
/// </summary>
public static class DeviceListRows
{
    public const string ChangeKind = "device_lists.change";
    public const string RoomKind = "device_lists.room";
    public const int Writer = 0;

    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public static StreamRow[] Rows(DeviceListChange change, IEnumerable<string> rooms) =>
    [
        new(ChangeKind, change.UserId, JsonSerializer.Serialize(change, Json)),
        .. rooms.Select(room => new StreamRow(RoomKind, room, JsonSerializer.Serialize(new { user_id = change.UserId }, Json))),
    ];

    public static T Parse<T>(string payload) =>
        JsonSerializer.Deserialize<T>(payload, Json) ?? throw new InvalidOperationException($"Empty {typeof(T).Name} payload");
}

/// <param name="UserId">The user who made the change.</param>
/// <param name="Changed">Users whose device lists changed (announced in <c>device_lists.changed</c>).</param>
/// <param name="OnlyFor">When set, only this user is told (signatures made with a user-signing key).</param>
/// <param name="DeviceKeys">Device id → new device keys (canonical JSON).</param>
/// <param name="DeletedDevices">Devices whose keys of every kind go.</param>
/// <param name="CrossSigningKeys">Key type (master, self_signing, user_signing) → key JSON.</param>
public sealed record DeviceListChange(
    string UserId,
    string[] Changed,
    string? OnlyFor = null,
    Dictionary<string, string>? DeviceKeys = null,
    string[]? DeletedDevices = null,
    Dictionary<string, string>? CrossSigningKeys = null,
    StoredSignature[]? Signatures = null);

public sealed record StoredSignature(string SignerUserId, string SignerKeyId, string TargetUserId, string TargetId, string Signature);

public sealed class DeviceListChangePersister : IStreamRowPersister
{
    public string Kind => DeviceListRows.ChangeKind;

    public void AddCommands(NpgsqlBatch batch, StreamEntry entry)
    {
        var row = DeviceListRows.Parse<DeviceListChange>(entry.Payload);
        foreach (var (deviceId, json) in row.DeviceKeys ?? [])
            batch.BatchCommands.Add(Command(
                """
                INSERT INTO e2e_device_keys (user_id, device_id, key_json) VALUES ($1, $2, $3)
                ON CONFLICT (user_id, device_id) DO UPDATE SET key_json = EXCLUDED.key_json
                """, row.UserId, deviceId, json));
        if (row.DeletedDevices is { Length: > 0 } deleted)
        {
            foreach (var table in new[] { "e2e_device_keys", "e2e_one_time_keys", "e2e_fallback_keys" })
                batch.BatchCommands.Add(Command($"DELETE FROM {table} WHERE user_id = $1 AND device_id = ANY($2)", row.UserId, deleted));
            batch.BatchCommands.Add(Command(
                "DELETE FROM e2e_signatures WHERE target_user_id = $1 AND target_id = ANY($2)", row.UserId, deleted));
        }
        foreach (var (type, json) in row.CrossSigningKeys ?? [])
            batch.BatchCommands.Add(Command(
                """
                INSERT INTO e2e_cross_signing_keys (user_id, key_type, key_json) VALUES ($1, $2, $3)
                ON CONFLICT (user_id, key_type) DO UPDATE SET key_json = EXCLUDED.key_json
                """, row.UserId, type, json));
        foreach (var s in row.Signatures ?? [])
            batch.BatchCommands.Add(Command(
                """
                INSERT INTO e2e_signatures (signer_user_id, signer_key_id, target_user_id, target_id, signature)
                VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (target_user_id, target_id, signer_user_id, signer_key_id) DO UPDATE SET signature = EXCLUDED.signature
                """, s.SignerUserId, s.SignerKeyId, s.TargetUserId, s.TargetId, s.Signature));
        if (row.Changed.Length > 0)
            batch.BatchCommands.Add(Command(
                "INSERT INTO device_list_changes (position, user_id, only_for) SELECT $1, u, $3::text FROM unnest($2::text[]) AS u",
                entry.Position, row.Changed, row.OnlyFor));
    }

    internal static NpgsqlBatchCommand Command(string sql, params object?[] values)
    {
        var command = new NpgsqlBatchCommand(sql);
        foreach (var v in values) command.Parameters.Add(new NpgsqlParameter { Value = v ?? DBNull.Value });
        return command;
    }
}

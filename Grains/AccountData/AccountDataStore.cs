using Homeserver.Streams;
using Npgsql;

namespace Homeserver.AccountData;

/// <summary>The stream row: one account data object replaced. <see cref="RoomId"/> is "" for global account data.</summary>
public sealed record AccountDataRow(string UserId, string RoomId, string Type, string Content);

/// <summary>One stored account data object and where it last changed.</summary>
public sealed record AccountDataItem(string RoomId, string Type, string Content, long Position);

/// <summary>
/// The read side of account data: straight from the database (its rows are written in the same transaction as their
/// stream row, so a silo whose reader passed a position reads at least that), no cache to invalidate.
/// </summary>
public sealed class AccountDataStore(NpgsqlDataSource db)
{
    /// <summary>The content, or null when the user has none of that type. <paramref name="roomId"/> null: global.</summary>
    public async Task<string?> GetAsync(string userId, string? roomId, string type)
    {
        await using var cmd = db.CreateCommand("SELECT content FROM account_data WHERE user_id = $1 AND room_id = $2 AND type = $3");
        cmd.Parameters.AddWithValue(userId);
        cmd.Parameters.AddWithValue(roomId ?? "");
        cmd.Parameters.AddWithValue(type);
        return await cmd.ExecuteScalarAsync() as string;
    }

    /// <summary>Everything the user keeps on one room (its tags among it, as <c>m.tag</c>), oldest change first.</summary>
    public async Task<IReadOnlyList<AccountDataItem>> GetRoomAsync(string userId, string roomId)
    {
        await using var cmd = db.CreateCommand(
            "SELECT room_id, type, content, stream_position FROM account_data WHERE user_id = $1 AND room_id = $2 ORDER BY stream_position");
        cmd.Parameters.AddWithValue(userId);
        cmd.Parameters.AddWithValue(roomId);
        var items = new List<AccountDataItem>();
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync())
            items.Add(new AccountDataItem(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetInt64(3)));
        return items;
    }

    /// <summary>Everything of the user that changed in (<paramref name="from"/>, <paramref name="to"/>] (from 0: all).</summary>
    public async Task<IReadOnlyList<AccountDataItem>> GetChangesAsync(string userId, long from, long to)
    {
        await using var cmd = db.CreateCommand(
            "SELECT room_id, type, content, stream_position FROM account_data WHERE user_id = $1 AND stream_position > $2 AND stream_position <= $3 ORDER BY stream_position");
        cmd.Parameters.AddWithValue(userId);
        cmd.Parameters.AddWithValue(from);
        cmd.Parameters.AddWithValue(to);
        var items = new List<AccountDataItem>();
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync())
            items.Add(new AccountDataItem(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetInt64(3)));
        return items;
    }
}

public sealed class AccountDataPersister : IStreamRowPersister
{
    public const string KindName = "account_data.set";
    public string Kind => KindName;

    public void AddCommands(NpgsqlBatch batch, StreamEntry entry)
    {
        var row = UserStreamSync.Read<AccountDataRow>(entry);
        batch.BatchCommands.Add(new NpgsqlBatchCommand(
            """
            INSERT INTO account_data (user_id, room_id, type, content, stream_position) VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (user_id, room_id, type) DO UPDATE SET content = EXCLUDED.content, stream_position = EXCLUDED.stream_position
            """)
        {
            Parameters =
            {
                new() { Value = row.UserId }, new() { Value = row.RoomId }, new() { Value = row.Type },
                new() { Value = row.Content }, new() { Value = entry.Position },
            }
        });
    }
}

using System.Text.Json.Nodes;
using Homeserver.Errors;
using Homeserver.Matrix;
using Npgsql;

namespace Homeserver.RoomDirectory;

/// <summary>
/// The <c>room_aliases</c> table (createRoom claims one there too). Read straight from the database: an alias must
/// resolve on every silo the moment it is created, and nothing caches it.
/// </summary>
public sealed class AliasStore(NpgsqlDataSource db)
{
    public const string BadAlias = "M_BAD_ALIAS";

    public sealed record Alias(string RoomId, string Creator);

    public async Task<Alias?> GetAsync(string alias)
    {
        await using var cmd = db.CreateCommand("SELECT room_id, creator FROM room_aliases WHERE alias = $1");
        cmd.Parameters.AddWithValue(alias);
        await using var reader = await cmd.ExecuteReaderAsync();
        return await reader.ReadAsync() ? new Alias(reader.GetString(0), reader.GetString(1)) : null;
    }

    /// <summary>False when the alias is taken.</summary>
    public async Task<bool> CreateAsync(string alias, string roomId, string creator)
    {
        await using var cmd = db.CreateCommand(
            "INSERT INTO room_aliases (alias, room_id, creator) VALUES ($1, $2, $3) ON CONFLICT (alias) DO NOTHING");
        cmd.Parameters.AddWithValue(alias);
        cmd.Parameters.AddWithValue(roomId);
        cmd.Parameters.AddWithValue(creator);
        return await cmd.ExecuteNonQueryAsync() == 1;
    }

    public async Task<bool> DeleteAsync(string alias, string roomId)
    {
        await using var cmd = db.CreateCommand("DELETE FROM room_aliases WHERE alias = $1 AND room_id = $2");
        cmd.Parameters.AddWithValue(alias);
        cmd.Parameters.AddWithValue(roomId);
        return await cmd.ExecuteNonQueryAsync() == 1;
    }

    public async Task<List<string>> GetAliasesForRoomAsync(string roomId)
    {
        await using var cmd = db.CreateCommand("SELECT alias FROM room_aliases WHERE room_id = $1 ORDER BY alias");
        cmd.Parameters.AddWithValue(roomId);
        var list = new List<string>();
        await using var reader = await cmd.ExecuteReaderAsync();
        while (await reader.ReadAsync()) list.Add(reader.GetString(0));
        return list;
    }

    /// <summary>
    /// An <c>m.room.canonical_alias</c> may only name aliases that point to the room (spec: 400 <c>M_BAD_ALIAS</c>);
    /// aliases the current event already names are not checked again, as in Synapse.
    /// </summary>
    public async Task ValidateCanonicalAliasAsync(string roomId, JsonObject content, JsonObject? previous)
    {
        var before = new HashSet<string>(StringComparer.Ordinal);
        if (previous is not null) before.UnionWith(Aliases(previous, strict: false));
        foreach (var alias in Aliases(content, strict: true))
        {
            if (before.Contains(alias)) continue;
            if (!Identifiers.IsValidRoomAlias(alias)) throw MatrixException.InvalidParam($"Invalid alias '{Quote.Short(alias)}'");
            if ((await GetAsync(alias))?.RoomId != roomId)
                throw new MatrixException(BadAlias, $"Room alias {alias} does not point to the room", 400);
        }
    }

    private static IEnumerable<string> Aliases(JsonObject content, bool strict)
    {
        if (content["alias"] is { } alias)
        {
            if (alias is JsonValue v && v.TryGetValue<string>(out var s)) yield return s;
            else if (strict) throw MatrixException.BadJson("'alias' must be a string");
        }
        if (content["alt_aliases"] is { } alt)
        {
            if (alt is not JsonArray array)
            {
                if (strict) throw MatrixException.BadJson("'alt_aliases' must be a list of strings");
                yield break;
            }
            foreach (var item in array)
            {
                if (item is JsonValue iv && iv.TryGetValue<string>(out var a)) yield return a;
                else if (strict) throw MatrixException.BadJson("'alt_aliases' must be a list of strings");
            }
        }
    }
}

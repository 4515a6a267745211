using Npgsql;

namespace Homeserver.Accounts;

/// <summary>
/// OpenID tokens (spec: Client-Server "OpenID", Server-Server "OpenID"): issued to a user for a third party, which
/// exchanges it at <c>/_matrix/federation/v1/openid/userinfo</c> for the user's id. In the database (any silo answers
/// the exchange), hashed, valid for an hour; expired ones are dropped as new ones are issued.
/// </summary>
public sealed class OpenIdTokens(NpgsqlDataSource db)
{
    public static readonly TimeSpan Lifetime = TimeSpan.FromHours(1);

    public async Task<string> IssueAsync(string userId)
    {
        var token = AccessTokens.NewToken();
        await using var batch = db.CreateBatch();
        batch.BatchCommands.Add(new NpgsqlBatchCommand("DELETE FROM openid_tokens WHERE expires_at < now()"));
        batch.BatchCommands.Add(new NpgsqlBatchCommand("INSERT INTO openid_tokens (token_hash, user_id, expires_at) VALUES ($1, $2, now() + $3)")
        {
            Parameters = { new() { Value = AccessTokens.Hash(token) }, new() { Value = userId }, new() { Value = Lifetime } }
        });
        await batch.ExecuteNonQueryAsync();
        return token;
    }

    /// <summary>The user the token was issued to, or null when it is unknown or expired.</summary>
    public async Task<string?> UserOfAsync(string token)
    {
        await using var cmd = db.CreateCommand("SELECT user_id FROM openid_tokens WHERE token_hash = $1 AND expires_at >= now()");
        cmd.Parameters.AddWithValue(AccessTokens.Hash(token));
        return await cmd.ExecuteScalarAsync() as string;
    }
}

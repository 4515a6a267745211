using System.Security.Cryptography;
using System.Text.Json;
using Homeserver.Errors;
using Npgsql;

namespace Homeserver.Accounts;

/// <summary>What a client put in a request's <c>auth</c> object.</summary>
public sealed record UiaSubmission(string? Type, string? Session, string? User, string? Password);

/// <summary>
/// User-interactive authentication (spec: "User-Interactive Authentication API") with single-stage flows. Sessions live
/// in the database, so the challenge and the answer may reach different silos. A stage that completes in the request
/// that carries it needs no session (test suites register with a bare <c>m.login.dummy</c>).
/// </summary>
public sealed class UserInteractiveAuth(NpgsqlDataSource db, IGrainFactory grains)
{
    public const string Dummy = "m.login.dummy";
    public const string Password = "m.login.password";

    /// <summary>Null when the request is authenticated; otherwise the JSON body of the 401 challenge to answer with.
    /// Throws for a wrong password (401 <c>M_FORBIDDEN</c> with the challenge) or a session that isn't ours.</summary>
    /// <param name="purpose">What the session authorises, e.g. <c>"register"</c> or <c>"delete_devices:@u:hs"</c>.</param>
    /// <param name="userId">For the password stage: whose password.</param>
    public async Task<string?> CheckAsync(UiaSubmission? auth, string stage, string purpose, string? userId = null)
    {
        if (auth is null) return Challenge(stage, await NewSessionAsync(purpose));

        var session = auth.Session;
        if (session is not null && !await SessionMatchesAsync(session, purpose))
            throw new MatrixException(ErrorCodes.Unknown, "Unknown session ID", 400);
        session ??= await NewSessionAsync(purpose);

        if (auth.Type is null)
            return Challenge(stage, session);
        if (auth.Type != stage)
            throw new MatrixException(ErrorCodes.Unknown, $"Unsupported authentication type '{auth.Type}'", 400);

        if (stage == Password)
        {
            if (userId is null) throw new InvalidOperationException("The password stage needs the user");
            if (auth.Password is null)
                throw new MatrixException(ErrorCodes.MissingParam, "Missing 'password' in auth", 400);
            if (auth.User is not null && auth.User != userId && auth.User != LocalpartOf(userId))
                throw MatrixException.Forbidden("Requester does not match the user being authenticated");
            if (!await grains.GetGrain<IUserGrain>(userId).CheckPasswordAsync(auth.Password))
                throw new MatrixException(ErrorCodes.Forbidden, "Invalid password", 401, Challenge(stage, session));
        }
        await DeleteSessionAsync(session);
        return null;
    }

    private static string LocalpartOf(string userId)
    {
        var colon = userId.IndexOf(':');
        return colon > 1 ? userId[1..colon] : userId;
    }

    private static string Challenge(string stage, string session)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteStartArray("flows");
            w.WriteStartObject();
            w.WriteStartArray("stages");
            w.WriteStringValue(stage);
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndArray();
            w.WriteStartObject("params");
            w.WriteEndObject();
            w.WriteString("session", session);
            w.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    private async Task<string> NewSessionAsync(string purpose)
    {
        var session = Convert.ToHexString(RandomNumberGenerator.GetBytes(16)).ToLowerInvariant();
        // Abandoned sessions are dropped as new ones are made: no separate sweeper needed.
        await using var batch = db.CreateBatch();
        batch.BatchCommands.Add(new NpgsqlBatchCommand("DELETE FROM uia_sessions WHERE created_at < now() - interval '1 day'"));
        batch.BatchCommands.Add(new NpgsqlBatchCommand("INSERT INTO uia_sessions (session_id, purpose) VALUES ($1, $2)")
        {
            Parameters = { new() { Value = session }, new() { Value = purpose } }
        });
        await batch.ExecuteNonQueryAsync();
        return session;
    }

    private async Task<bool> SessionMatchesAsync(string session, string purpose)
    {
        await using var cmd = db.CreateCommand("SELECT purpose FROM uia_sessions WHERE session_id = $1");
        cmd.Parameters.AddWithValue(session);
        return await cmd.ExecuteScalarAsync() is string stored && stored == purpose;
    }

    private async Task DeleteSessionAsync(string session)
    {
        await using var cmd = db.CreateCommand("DELETE FROM uia_sessions WHERE session_id = $1");
        cmd.Parameters.AddWithValue(session);
        await cmd.ExecuteNonQueryAsync();
    }
}

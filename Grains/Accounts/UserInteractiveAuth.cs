using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Homeserver.Errors;
using Homeserver.Matrix;
using Npgsql;

namespace Homeserver.Accounts;

/// <summary>What a client put in a request's <c>auth</c> object.</summary>
public sealed record UiaSubmission(string? Type, string? Session, string? User, string? Password)
{
    /// <summary>The <c>auth</c> object of a user-interactive request, or null when there is none.</summary>
    public static UiaSubmission? Parse(JsonObject body)
    {
        if (!body.TryGetPropertyValue("auth", out var node) || node is null) return null;
        if (node is not JsonObject auth) throw MatrixException.BadJson("'auth' must be an object");
        return new UiaSubmission(
            ClientJson.OptionalString(auth, "type"),
            ClientJson.OptionalString(auth, "session"),
            IdentifiedUser(auth),
            ClientJson.OptionalString(auth, "password"));
    }

    /// <summary>The user named by an <c>identifier</c> of type <c>m.id.user</c>, or by the deprecated top-level
    /// <c>user</c>: how both <c>POST /login</c> and the password stage name the user.</summary>
    public static string? IdentifiedUser(JsonObject body)
    {
        if (body.TryGetPropertyValue("identifier", out var node) && node is not null)
        {
            if (node is not JsonObject identifier) throw MatrixException.BadJson("'identifier' must be an object");
            var type = ClientJson.RequireString(identifier, "type");
            if (type != "m.id.user") throw new MatrixException(ErrorCodes.Unknown, $"Unknown login identifier type '{Quote.Short(type)}'", 400);
            return ClientJson.RequireString(identifier, "user");
        }
        return ClientJson.OptionalString(body, "user");
    }
}

/// <summary>What the stages of a request decided: <see cref="Challenge"/> (the 401 body) when the client has more
/// to do; otherwise the operation may run, with <see cref="Parameters"/> (the request's own, or those remembered from
/// the request that opened the session) and, for a session that already completed once, its <see cref="Result"/>.</summary>
public sealed record UiaOutcome(string? Challenge, string? Session, JsonObject Parameters, string? Result);

/// <summary>
/// User-interactive authentication (spec: "User-Interactive Authentication API") with single-stage flows. Sessions live
/// in the database, so the challenge and the answer may reach different silos. A session is bound to the operation it
/// was opened for (method, path and user: another is 403), remembers that request's parameters for the stages that
/// follow (which may send only <c>auth</c>), and stays valid once completed, so re-submitting it repeats the operation
/// rather than failing (registration answers with the same user). Sessions expire after a day. A stage that
/// completes in the request that carries it needs no session (test suites register with a bare <c>m.login.dummy</c>).
/// </summary>
public sealed class UserInteractiveAuth(NpgsqlDataSource db, IGrainFactory grains)
{
    public const string Dummy = "m.login.dummy";
    public const string Password = "m.login.password";

    /// <summary>The operation a request asks for, to bind its session to: method, path and, if known, the user.</summary>
    public static string Operation(string method, string path, string? userId = null) =>
        userId is null ? $"{method} {path}" : $"{method} {path} {userId}";

    /// <summary>As <see cref="CheckWithParametersAsync"/>, for operations that need nothing remembered.</summary>
    public async Task<string?> CheckAsync(UiaSubmission? auth, string stage, string purpose, string? userId = null) =>
        (await CheckWithParametersAsync(auth, stage, purpose, new JsonObject(), userId)).Challenge;

    /// <summary>
    /// Runs the request's stage. Throws for a wrong password (401 <c>M_FORBIDDEN</c> with the challenge), an unknown
    /// session (400) or a session opened for another operation (403).
    /// </summary>
    /// <param name="purpose">What the session authorises (<see cref="Operation"/>).</param>
    /// <param name="parameters">The request's parameters (its body without <c>auth</c>), remembered when a session is
    /// opened; an empty object means "use the remembered ones".</param>
    /// <param name="userId">For the password stage: whose password.</param>
    public async Task<UiaOutcome> CheckWithParametersAsync(UiaSubmission? auth, string stage, string purpose, JsonObject parameters,
        string? userId = null)
    {
        var stored = auth?.Session is { } id ? await LoadAsync(id) : null;
        if (auth?.Session is not null)
        {
            if (stored is null) throw new MatrixException(ErrorCodes.Unknown, "Unknown session ID", 400);
            if (stored.Purpose != purpose)
                throw MatrixException.Forbidden("Requested operation has changed during the UI authentication session.");
        }
        var effective = parameters.Count > 0 || stored?.Params is null ? parameters : stored.Params;
        if (stored is { Completed: true }) return new UiaOutcome(null, stored.Id, effective, stored.Result);

        if (auth?.Type is null)
        {
            var session = stored?.Id ?? await NewSessionAsync(purpose, effective);
            if (stored is not null && parameters.Count > 0) await RememberAsync(session, parameters);
            return new UiaOutcome(Challenge(stage, session), session, effective, null);
        }
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
            {
                var session = stored?.Id ?? await NewSessionAsync(purpose, effective);
                throw new MatrixException(ErrorCodes.Forbidden, "Invalid password", 401, Challenge(stage, session));
            }
        }
        if (stored is not null) await MarkCompletedAsync(stored.Id);
        return new UiaOutcome(null, stored?.Id, effective, null);
    }

    /// <summary>Records what the authorised operation produced, for a re-submission of the session to answer with.</summary>
    public async Task RecordResultAsync(string session, string result)
    {
        await using var cmd = db.CreateCommand("UPDATE uia_sessions SET completed = true, result = $2 WHERE session_id = $1");
        cmd.Parameters.AddWithValue(session);
        cmd.Parameters.AddWithValue(result);
        await cmd.ExecuteNonQueryAsync();
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
            w.WriteStartArray("completed"); // single-stage flows: nothing is completed while a challenge stands
            w.WriteEndArray();
            w.WriteString("session", session);
            w.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    private sealed record StoredSession(string Id, string Purpose, JsonObject? Params, bool Completed, string? Result);

    private async Task<string> NewSessionAsync(string purpose, JsonObject parameters)
    {
        var session = Convert.ToHexString(RandomNumberGenerator.GetBytes(16)).ToLowerInvariant();
        // Abandoned sessions are dropped as new ones are made: no separate sweeper needed.
        await using var batch = db.CreateBatch();
        batch.BatchCommands.Add(new NpgsqlBatchCommand("DELETE FROM uia_sessions WHERE created_at < now() - interval '1 day'"));
        batch.BatchCommands.Add(new NpgsqlBatchCommand("INSERT INTO uia_sessions (session_id, purpose, params) VALUES ($1, $2, $3::jsonb)")
        {
            Parameters = { new() { Value = session }, new() { Value = purpose }, new() { Value = parameters.ToJsonString() } }
        });
        await batch.ExecuteNonQueryAsync();
        return session;
    }

    private async Task<StoredSession?> LoadAsync(string session)
    {
        await using var cmd = db.CreateCommand(
            "SELECT purpose, params::text, completed, result FROM uia_sessions WHERE session_id = $1 AND created_at >= now() - interval '1 day'");
        cmd.Parameters.AddWithValue(session);
        await using var reader = await cmd.ExecuteReaderAsync();
        if (!await reader.ReadAsync()) return null;
        var parameters = reader.IsDBNull(1) ? null : JsonNode.Parse(reader.GetString(1)) as JsonObject;
        return new StoredSession(session, reader.GetString(0), parameters is { Count: > 0 } ? parameters : null,
            reader.GetBoolean(2), reader.IsDBNull(3) ? null : reader.GetString(3));
    }

    private async Task RememberAsync(string session, JsonObject parameters)
    {
        await using var cmd = db.CreateCommand("UPDATE uia_sessions SET params = $2::jsonb WHERE session_id = $1");
        cmd.Parameters.AddWithValue(session);
        cmd.Parameters.AddWithValue(parameters.ToJsonString());
        await cmd.ExecuteNonQueryAsync();
    }

    private async Task MarkCompletedAsync(string session)
    {
        await using var cmd = db.CreateCommand("UPDATE uia_sessions SET completed = true WHERE session_id = $1");
        cmd.Parameters.AddWithValue(session);
        await cmd.ExecuteNonQueryAsync();
    }
}

using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Homeserver.Caches;
using Homeserver.Errors;
using Homeserver.Matrix;
using Homeserver.Profile;
using Homeserver.Streams;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Homeserver.Accounts;

/// <summary>
/// Synapse's shared-secret registration (<c>GET/POST /_synapse/admin/v1/register</c>, docs/admin_api/register_api.md),
/// the way <c>register_new_matrix_user</c> and test suites create users and admins: the client fetches a nonce, then
/// posts the new user with <c>mac</c> = hex HMAC-SHA1, keyed with <c>Homeserver:RegistrationSharedSecret</c>, of
/// <c>nonce \0 username \0 password \0 admin|notadmin [\0 user_type]</c>. Nonces are rows of
/// <c>registration_nonces</c>, so any front end accepts a nonce another issued; each is used once and expires after
/// <see cref="NonceLifetime"/> (Synapse's <c>NONCE_TIMEOUT</c>). Checks and messages follow Synapse's
/// <c>UserRegisterServlet</c> in its order.
/// </summary>
public sealed class SharedSecretRegistration(NpgsqlDataSource db, IGrainFactory grains, StreamNotifier notifier,
    IOptions<HomeserverOptions> options)
{
    public static readonly TimeSpan NonceLifetime = TimeSpan.FromSeconds(60);

    /// <summary>Synapse's <c>UserTypes.ALL_USER_TYPES</c>: the user types an admin may give an account.</summary>
    public static readonly IReadOnlyList<string> UserTypes = ["support", "bot"];

    private const int MaxFieldLength = 512;

    /// <summary>A new nonce (64 random bytes in hex, as Synapse's <c>secrets.token_hex(64)</c>); expired ones are
    /// removed on the way, so the table holds at most a minute's worth.</summary>
    public async Task<string> NewNonceAsync()
    {
        // Off means off: unlike Synapse, no nonce is handed out (and no row written) for a feature that is disabled.
        RequireEnabled();
        var nonce = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(64));
        await using var batch = db.CreateBatch();
        batch.BatchCommands.Add(new NpgsqlBatchCommand("DELETE FROM registration_nonces WHERE created_at < now() - $1::interval")
        {
            Parameters = { new() { Value = NonceLifetime } }
        });
        batch.BatchCommands.Add(new NpgsqlBatchCommand("INSERT INTO registration_nonces (nonce) VALUES ($1)")
        {
            Parameters = { new() { Value = nonce } }
        });
        await batch.ExecuteNonQueryAsync();
        return nonce;
    }

    /// <summary>Registers the user the body describes (Synapse's fields: <c>nonce</c>, <c>username</c>,
    /// <c>password</c>, <c>mac</c>, <c>admin</c>, <c>user_type</c>, <c>displayname</c>, <c>device_id</c>,
    /// <c>initial_device_display_name</c>, <c>inhibit_login</c>) and opens its session unless inhibited.</summary>
    public async Task<LoginResult> RegisterAsync(JsonObject body, CancellationToken ct)
    {
        var secret = RequireEnabled();
        if (!body.TryGetPropertyValue("nonce", out var nonceNode))
            throw MatrixException.BadJson("nonce must be specified");
        // Consumed even when what follows is refused, as in Synapse: a nonce is good for one attempt.
        if (nonceNode is not JsonValue nv || !nv.TryGetValue<string>(out var nonce) || !await ConsumeNonceAsync(nonce))
            throw new MatrixException(ErrorCodes.Unknown, "unrecognised nonce", 400);

        var username = Field(body, "username");
        var password = Field(body, "password");
        var admin = IsTruthy(body["admin"]);
        var userType = OptionalText(body, "user_type", "Invalid user type");
        if (userType is not null && !UserTypes.Contains(userType)) throw new MatrixException(ErrorCodes.Unknown, "Invalid user type", 400);
        var displayName = InputLimits.Text(OptionalText(body, "displayname", "Invalid displayname"), InputLimits.MaxDisplayNameLength, "'displayname'");
        if (!body.TryGetPropertyValue("mac", out var macNode)) throw MatrixException.BadJson("mac must be specified");
        var mac = macNode is JsonValue mv && mv.TryGetValue<string>(out var m) ? m : "";
        if (!CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(Mac(secret, nonce, username, password, admin, userType)),
                Encoding.ASCII.GetBytes(mac)))
            throw new MatrixException(ErrorCodes.Unknown, "HMAC incorrect", 403); // Synapse's code, not M_FORBIDDEN

        var userId = UserIds.ValidateNewLocalpart(username, options.Value.ServerName);
        PasswordHashing.CheckLength(password);
        var user = grains.GetGrain<IUserGrain>(userId);
        var session = await user.RegisterAsync(new RegisterRequest(password, IsGuest: false, DeviceFields.DeviceId(body),
            DeviceFields.InitialDisplayName(body), ClientJson.OptionalBool(body, "inhibit_login"), Admin: admin, UserType: userType));
        if (displayName is { Length: > 0 })
        {
            var profile = await grains.GetGrain<IProfileGrain>(userId).SetAsync(new ProfileUpdate(true, displayName, false, null));
            await CacheInvalidator.WaitAppliedAsync(notifier, profile.CachesPosition, ct);
        }
        return session;
    }

    /// <summary>The <c>mac</c> Synapse expects (and <c>register_new_matrix_user</c> sends).</summary>
    public static string Mac(string secret, string nonce, string username, string password, bool admin, string? userType)
    {
        var message = $"{nonce}\0{username}\0{password}\0{(admin ? "admin" : "notadmin")}";
        if (!string.IsNullOrEmpty(userType)) message += $"\0{userType}";
        return Convert.ToHexStringLower(HMACSHA1.HashData(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes(message)));
    }

    private string RequireEnabled() => options.Value.RegistrationSharedSecret is { Length: > 0 } secret
        ? secret
        : throw new MatrixException(ErrorCodes.Unknown, "Shared secret registration is not enabled", 400);

    /// <summary>True once for a nonce issued within <see cref="NonceLifetime"/>: the delete decides between two
    /// front ends presenting the same nonce at once.</summary>
    private async Task<bool> ConsumeNonceAsync(string nonce)
    {
        await using var cmd = db.CreateCommand("DELETE FROM registration_nonces WHERE nonce = $1 RETURNING created_at >= now() - $2::interval");
        cmd.Parameters.AddWithValue(nonce);
        cmd.Parameters.AddWithValue(NonceLifetime);
        return await cmd.ExecuteScalarAsync() is true;
    }

    /// <summary><c>username</c> or <c>password</c>: required (<c>M_BAD_JSON</c>), a string of at most 512 characters
    /// without NUL (it would make the mac ambiguous), else "Invalid …".</summary>
    private static string Field(JsonObject body, string name)
    {
        if (!body.TryGetPropertyValue(name, out var node)) throw MatrixException.BadJson($"{name} must be specified");
        return node is JsonValue v && v.TryGetValue<string>(out var s) && s.Length <= MaxFieldLength && !s.Contains('\0')
            ? s
            : throw new MatrixException(ErrorCodes.Unknown, $"Invalid {name}", 400);
    }

    private static string? OptionalText(JsonObject body, string name, string invalid) => body[name] switch
    {
        null => null,
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        _ => throw new MatrixException(ErrorCodes.Unknown, invalid, 400),
    };

    /// <summary>Python's truth of a JSON value, which is what Synapse tests <c>admin</c> with.</summary>
    private static bool IsTruthy(JsonNode? node) => node switch
    {
        null => false,
        JsonValue v when v.TryGetValue<bool>(out var b) => b,
        JsonValue v when v.TryGetValue<string>(out var s) => s.Length > 0,
        JsonValue v when v.TryGetValue<double>(out var d) => d != 0,
        JsonArray a => a.Count > 0,
        JsonObject o => o.Count > 0,
        _ => false,
    };
}

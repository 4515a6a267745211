using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.Admin;

/// <summary>A 2-silo cluster with shared-secret registration and guest access on and a short client IP flush period, with helpers to
/// register through the shared secret (the HMAC computed here from Synapse's documented recipe, not by the server's
/// code) and to get an admin.</summary>
public sealed class SynapseAdminCluster : TwoSiloCluster
{
    public const string Secret = "a shared secret for the tests";
    public const string RegisterPath = "/_synapse/admin/v1/register";

    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?>
    {
        ["Homeserver:RegistrationSharedSecret"] = Secret,
        ["Homeserver:ClientIpFlushPeriod"] = "00:00:01",
        ["Homeserver:EnableGuestAccess"] = "true",
    };

    /// <summary>docs/admin_api/register_api.md: hex HMAC-SHA1 of nonce, username, password and "admin"/"notadmin"
    /// (and the user type when given), NUL-separated, keyed with the shared secret.</summary>
    public static string Mac(string nonce, string user, string password, bool admin, string? userType = null, string secret = Secret)
    {
        var parts = new List<byte[]> { Encoding.UTF8.GetBytes(nonce), Encoding.UTF8.GetBytes(user), Encoding.UTF8.GetBytes(password),
            Encoding.UTF8.GetBytes(admin ? "admin" : "notadmin") };
        if (userType is not null) parts.Add(Encoding.UTF8.GetBytes(userType));
        var message = parts.SelectMany((p, i) => i == 0 ? p : new byte[] { 0 }.Concat(p)).ToArray();
        using var hmac = new HMACSHA1(Encoding.UTF8.GetBytes(secret));
        return Convert.ToHexString(hmac.ComputeHash(message)).ToLowerInvariant();
    }

    public static async Task<string> NonceAsync(TestSilo silo) =>
        (await silo.Http.GetJsonAsync(RegisterPath)).EnsureSuccess()["nonce"].GetValue<string>();

    /// <summary>Registers through the shared secret (a fresh nonce from <paramref name="silo"/>) and returns the answer.</summary>
    public static async Task<MatrixResponse> RegisterAsync(TestSilo silo, string user, string password, bool admin,
        string? userType = null, string? displayName = null)
    {
        var nonce = await NonceAsync(silo);
        var body = new JsonObject
        {
            ["nonce"] = nonce, ["username"] = user, ["password"] = password, ["admin"] = admin,
            ["mac"] = Mac(nonce, user, password, admin, userType), ["user_type"] = userType,
        };
        if (displayName is not null) body["displayname"] = displayName;
        return await silo.Http.PostJsonAsync(RegisterPath, body);
    }

    /// <summary>A new server admin (by the account flag), logged in on silo A.</summary>
    public async Task<MatrixTestClient> AdminAsync()
    {
        var localpart = MatrixTestClient.UniqueLocalpart("admin");
        (await RegisterAsync(A, localpart, MatrixTestClient.DefaultPassword, admin: true)).EnsureSuccess();
        return await MatrixTestClient.LoginAsync(A, localpart);
    }
}

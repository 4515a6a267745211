using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.RateLimits;

/// <summary>Requests the rate-limit tests repeat, and the 429 they expect.</summary>
internal static class RateLimitTestSupport
{
    public static JsonObject PasswordLogin(string user, string password) => new()
    {
        ["type"] = "m.login.password",
        ["identifier"] = new JsonObject { ["type"] = "m.id.user", ["user"] = user },
        ["password"] = password,
    };

    public static JsonObject DummyRegistration(string localpart) => new()
    {
        ["username"] = localpart,
        ["password"] = "a password of no importance",
        ["auth"] = new JsonObject { ["type"] = "m.login.dummy" },
    };

    public static JsonObject Text(string body) => new() { ["msgtype"] = "m.text", ["body"] = body };

    /// <summary>Asserts 429 <c>M_LIMIT_EXCEEDED</c> with a positive <c>retry_after_ms</c>, and returns it.</summary>
    public static long AssertLimited(MatrixResponse r)
    {
        MatrixPaths.AssertError(r, 429, "M_LIMIT_EXCEEDED");
        var retry = r["retry_after_ms"].GetValue<long>();
        Assert.True(retry > 0, $"retry_after_ms should be positive: {r.Text}");
        return retry;
    }
}

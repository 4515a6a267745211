using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.Operator;

/// <summary>
/// The Orleans dashboard: absent unless enabled; when enabled, 401 with a Basic challenge without credentials, 403
/// for a user who is not an admin, the page and its API for an admin's token, as a bearer header or as the Basic
/// password a browser sends.
/// </summary>
public sealed class DashboardTests
{
    private const string Page = "/_homeserver/dashboard/";

    [Fact]
    public async Task The_dashboard_is_off_by_default()
    {
        await using var cluster = await HomeserverTestCluster.StartAsync(1);
        var admin = await MatrixTestClient.RegisterAsync(cluster.Silos[0]);
        using var response = await admin.Http.GetAsync(Page);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Fact]
    public async Task When_enabled_only_admins_see_the_dashboard()
    {
        const string adminLocalpart = "dashboard-admin";
        await using var cluster = await HomeserverTestCluster.StartAsync(2, new Dictionary<string, string?>
        {
            ["Homeserver:Dashboard:Enabled"] = "true",
            ["Homeserver:AdminUsers:0"] = $"@{adminLocalpart}:localhost",
        });
        var silo = cluster.Silos[0];
        var admin = await MatrixTestClient.RegisterAsync(silo, adminLocalpart);
        var user = await MatrixTestClient.RegisterAsync(silo);

        using (var anonymous = await silo.Http.GetAsync(Page))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
            Assert.Equal("Basic", Assert.Single(anonymous.Headers.WwwAuthenticate).Scheme);
            Assert.Contains("M_MISSING_TOKEN", await anonymous.Content.ReadAsStringAsync());
        }
        using (var wrong = await SendAsync(silo, Basic("nobody", "not-a-token")))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
            Assert.Contains("M_UNKNOWN_TOKEN", await wrong.Content.ReadAsStringAsync());
        }
        var forbidden = await user.GetAsync(Page);
        Assert.Equal(403, forbidden.StatusCode);
        Assert.Equal("M_FORBIDDEN", forbidden.ErrCode);

        using (var page = await admin.Http.GetAsync(Page))
        {
            Assert.Equal(HttpStatusCode.OK, page.StatusCode);
            Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
            Assert.Contains("index.min.js", await page.Content.ReadAsStringAsync());
        }
        // What a browser sends after the Basic prompt, on the page and on the dashboard's own API calls.
        using (var page = await SendAsync(silo, Basic(admin.UserId, admin.AccessToken)))
            Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        using (var stats = await SendAsync(silo, Basic(admin.UserId, admin.AccessToken), $"{Page}ClusterStats"))
            Assert.Equal(HttpStatusCode.OK, stats.StatusCode);
        using (var stats = await SendAsync(silo, Basic(user.UserId, user.AccessToken), $"{Page}ClusterStats"))
            Assert.Equal(HttpStatusCode.Forbidden, stats.StatusCode);
    }

    private static AuthenticationHeaderValue Basic(string user, string password) =>
        new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}")));

    private static async Task<HttpResponseMessage> SendAsync(TestSilo silo, AuthenticationHeaderValue auth, string path = Page)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Authorization = auth;
        return await silo.Http.SendAsync(request);
    }
}

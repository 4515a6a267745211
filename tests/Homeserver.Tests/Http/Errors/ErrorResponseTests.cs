using System.Net;
using System.Text;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.Errors;

/// <summary>What any client gets for bad requests: a Matrix error body with a JSON content type, CORS headers, the
/// right status, and never a 500 or a stack trace.</summary>
public sealed class ErrorResponseTests(ErrorResponseTests.Fixture fixture) : IClassFixture<ErrorResponseTests.Fixture>
{
    public sealed class Fixture : TwoSiloCluster;

    private HttpClient Http => fixture.Cluster.Silos[1].Http;

    private static async Task AssertMatrixErrorAsync(HttpResponseMessage response, int status, string errcode)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.Equal(status, (int)response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains($"\"errcode\":\"{errcode}\"", body);
        Assert.Contains("\"error\":", body);
        Assert.DoesNotContain(" at ", body); // no stack traces
        Assert.Equal("*", response.Headers.GetValues("Access-Control-Allow-Origin").Single());
    }

    [Theory]
    [InlineData("/_matrix/client/v3/no/such/endpoint")]
    [InlineData("/_matrix/client/v3/rooms")]
    [InlineData("/")]
    public async Task Unknown_routes_are_404_unrecognized(string path) =>
        await AssertMatrixErrorAsync(await Http.GetAsync(path), 404, "M_UNRECOGNIZED");

    [Fact]
    public async Task A_known_route_with_the_wrong_method_is_405_unrecognized()
    {
        await AssertMatrixErrorAsync(await Http.DeleteAsync("/_matrix/client/v3/sync"), 405, "M_UNRECOGNIZED");
        await AssertMatrixErrorAsync(await Http.PutAsync("/_matrix/client/v3/createRoom", new StringContent("{}")), 405, "M_UNRECOGNIZED");
    }

    [Fact]
    public async Task Unparsable_and_wrongly_shaped_bodies_are_400()
    {
        var user = await MatrixTestClient.RegisterAsync(fixture.Cluster.Silos[0]);
        var notJson = new HttpRequestMessage(HttpMethod.Post, "/_matrix/client/v3/createRoom") { Content = new StringContent("{\"name\": ", Encoding.UTF8, "application/json") };
        notJson.Headers.Authorization = new("Bearer", user.AccessToken);
        await AssertMatrixErrorAsync(await Http.SendAsync(notJson), 400, "M_NOT_JSON");

        var array = new HttpRequestMessage(HttpMethod.Post, "/_matrix/client/v3/createRoom") { Content = new StringContent("[1,2]", Encoding.UTF8, "application/json") };
        array.Headers.Authorization = new("Bearer", user.AccessToken);
        await AssertMatrixErrorAsync(await Http.SendAsync(array), 400, "M_BAD_JSON");

        // Well-formed but ambiguous: a key given twice.
        var duplicate = new HttpRequestMessage(HttpMethod.Post, "/_matrix/client/v3/createRoom") { Content = new StringContent("{\"name\":\"a\",\"name\":\"b\"}", Encoding.UTF8, "application/json") };
        duplicate.Headers.Authorization = new("Bearer", user.AccessToken);
        await AssertMatrixErrorAsync(await Http.SendAsync(duplicate), 400, "M_BAD_JSON");

        var filter = new HttpRequestMessage(HttpMethod.Get, "/_matrix/client/v3/sync?filter=" + Uri.EscapeDataString("{\"room\":{},\"room\":{}}"));
        filter.Headers.Authorization = new("Bearer", user.AccessToken);
        await AssertMatrixErrorAsync(await Http.SendAsync(filter), 400, "M_BAD_JSON");
    }

    [Fact]
    public async Task Missing_and_unknown_tokens_are_401()
    {
        await AssertMatrixErrorAsync(await Http.GetAsync("/_matrix/client/v3/account/whoami"), 401, "M_MISSING_TOKEN");
        var request = new HttpRequestMessage(HttpMethod.Get, "/_matrix/client/v3/account/whoami");
        request.Headers.Authorization = new("Bearer", "not-a-token");
        await AssertMatrixErrorAsync(await Http.SendAsync(request), 401, "M_UNKNOWN_TOKEN");
        await AssertMatrixErrorAsync(await Http.GetAsync("/_matrix/client/v3/account/whoami?access_token=nope"), 401, "M_UNKNOWN_TOKEN");
    }

    [Fact]
    public async Task Cors_preflight_is_answered_for_browser_clients()
    {
        var request = new HttpRequestMessage(HttpMethod.Options, "/_matrix/client/v3/sync");
        request.Headers.Add("Origin", "https://app.example");
        request.Headers.Add("Access-Control-Request-Method", "GET");
        var response = await Http.SendAsync(request);
        Assert.True(response.IsSuccessStatusCode);
        Assert.Equal("*", response.Headers.GetValues("Access-Control-Allow-Origin").Single());
        Assert.Contains("Authorization", response.Headers.GetValues("Access-Control-Allow-Headers").Single());
        Assert.Contains("PUT", response.Headers.GetValues("Access-Control-Allow-Methods").Single());

        var versions = await Http.GetAsync("/_matrix/client/versions");
        Assert.Equal(HttpStatusCode.OK, versions.StatusCode);
        Assert.Equal("*", versions.Headers.GetValues("Access-Control-Allow-Origin").Single());
    }
}

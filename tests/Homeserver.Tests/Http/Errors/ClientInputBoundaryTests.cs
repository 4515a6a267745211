using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using static Homeserver.Tests.Infrastructure.MatrixPaths;

namespace Homeserver.Tests.Http.Errors;

/// <summary>The boundary's rules one by one, each against the endpoint where a hostile client found the hole.</summary>
public sealed class ClientInputBoundaryTests(ClientInputBoundaryTests.Fixture fixture) : IClassFixture<ClientInputBoundaryTests.Fixture>
{
    public sealed class Fixture : TwoSiloCluster;

    private static async Task<MatrixResponse> SendRawAsync(MatrixTestClient user, HttpMethod method, string path, byte[] body, bool chunked = false)
    {
        using var request = new HttpRequestMessage(method, path)
        {
            Content = chunked ? new StreamContent(new MemoryStream(body)) : new ByteArrayContent(body),
        };
        using var response = await user.Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        return new MatrixResponse(response.StatusCode, text.Length > 0 ? JsonNode.Parse(text) : null, text);
    }

    [Fact]
    public async Task Event_content_is_limited_to_the_spec_event_size()
    {
        var user = await fixture.UserAsync("size");
        var room = await user.CreateRoomAsync();
        var fits = new JsonObject { ["msgtype"] = "m.text", ["body"] = new string('x', 60_000) };
        (await user.PutAsync($"{Room(room)}/send/m.room.message/fits", fits)).EnsureSuccess();
        var tooLarge = Encoding.UTF8.GetBytes(new JsonObject { ["msgtype"] = "m.text", ["body"] = new string('x', 65_536) }.ToJsonString());
        AssertError(await SendRawAsync(user, HttpMethod.Put, $"{Room(room)}/send/m.room.message/big", tooLarge), 413, "M_TOO_LARGE");
        AssertError(await SendRawAsync(user, HttpMethod.Put, $"{Room(room)}/state/org.example/k", tooLarge, chunked: true), 413, "M_TOO_LARGE");
    }

    [Fact]
    public async Task Filters_have_the_default_limit_however_they_are_sent()
    {
        var user = await fixture.UserAsync("filter");
        var huge = Encoding.UTF8.GetBytes("{\"event_fields\":[\"" + new string('x', 2 << 20) + "\"]}");
        AssertError(await SendRawAsync(user, HttpMethod.Post, $"{V3}/user/{E(user.UserId)}/filter", huge), 413, "M_TOO_LARGE");
        AssertError(await SendRawAsync(user, HttpMethod.Post, $"{V3}/user/{E(user.UserId)}/filter", huge, chunked: true), 413, "M_TOO_LARGE");
    }

    [Fact]
    public async Task Values_that_key_a_row_are_bounded_and_errors_quote_only_a_prefix()
    {
        var user = await fixture.UserAsync("bounds");
        var room = await user.CreateRoomAsync();
        var eventId = await user.SendTextAsync(room, "x");
        var receipt = await user.PostAsync($"{Room(room)}/receipt/m.read/{E(eventId)}", new { thread_id = new string('t', 900 * 1024) });
        AssertError(receipt, 400, "M_TOO_LARGE");
        AssertError(await user.PutAsync($"{Room(room)}/state/org.example/{new string('k', 256)}", new { }), 400, "M_TOO_LARGE");
        AssertError(await user.PutAsync($"{V3}/devices/{E(user.DeviceId)}", new { display_name = new string('d', 101) }), 400, "M_TOO_LARGE");

        var login = await user.Http.PostJsonAsync($"{V3}/login", new { type = new string('z', 900 * 1024), password = "x" });
        AssertError(login, 400, "M_UNKNOWN");
        Assert.True(login.Text.Length < 300, $"a {login.Text.Length}-character error");
    }

    [Fact]
    public async Task Content_postgres_cannot_hold_is_refused_and_the_user_directory_keeps_answering()
    {
        var user = await fixture.UserAsync("nul");
        var room = await user.CreateRoomAsync();
        var path = $"{Room(room)}/send/m.room.message/nul";
        AssertError(await SendRawAsync(user, HttpMethod.Put, path, "{\"body\":\"a\\u0000\",\"msgtype\":\"m.text\"}"u8.ToArray()), 400, "M_BAD_JSON");
        AssertError(await SendRawAsync(user, HttpMethod.Put, path, "{\"\\u0000\":1}"u8.ToArray()), 400, "M_BAD_JSON");
        AssertError(await SendRawAsync(user, HttpMethod.Put, path, "{\"body\":\"\\ud800\"}"u8.ToArray()), 400, "M_BAD_JSON");
        AssertError(await SendRawAsync(user, HttpMethod.Put, path, [.. "{\"body\":\""u8, 0xFF, 0xFE, .. "\"}"u8]), 400, "M_NOT_JSON");
        AssertError(await user.GetAsync($"{Room(room)}/messages?dir=b&from=%00"), 400, "M_INVALID_PARAM");
        (await user.PostAsync($"{V3}/user_directory/search", new { search_term = "nul" })).EnsureSuccess();
        // Nothing of the refused sends was stored.
        var page = (await user.GetAsync($"{Room(room)}/messages?dir=b&limit=50")).EnsureSuccess();
        Assert.DoesNotContain(page["chunk"].AsArray(), e => e?["type"]?.GetValue<string>() == "m.room.message");
    }

    [Fact]
    public async Task Wrong_types_deep_in_a_signature_upload_are_failures_not_errors()
    {
        var user = await fixture.UserAsync("sigs");
        foreach (var body in new[]
                 {
                     "{\"" + user.UserId + "\":{\"DEV\":{\"signatures\":[]}}}",
                     "{\"" + user.UserId + "\":{\"DEV\":{\"signatures\":{\"" + user.UserId + "\":[1]}}}}",
                     "{\"" + user.UserId + "\":{\"DEV\":{\"signatures\":{\"" + user.UserId + "\":{\"ed25519:DEV\":5}}}}}",
                     "{\"@other:localhost\":{\"KEY\":{\"signatures\":\"x\"}}}",
                 })
        {
            var r = await SendRawAsync(user, HttpMethod.Post, $"{V3}/keys/signatures/upload", Encoding.UTF8.GetBytes(body));
            Assert.True(r.StatusCode is 200 or 400, $"{body}: {r.StatusCode} {r.Text}");
        }
    }

    [Theory]
    [InlineData("/_matrix/client/v3/foo.bar")]
    [InlineData("/favicon.ico")]
    [InlineData("/_matrix/client/v3/rooms/a.b/unknown.json")]
    public async Task Unknown_paths_with_dots_are_matrix_404s(string path)
    {
        using var response = await fixture.A.Http.GetAsync(path);
        Assert.Equal(404, (int)response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains("M_UNRECOGNIZED", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task What_kestrel_used_to_refuse_bare_gets_a_matrix_error()
    {
        var uri = new Uri(fixture.A.BaseUrl);
        async Task<string> RawAsync(byte[] request)
        {
            using var socket = new TcpClient();
            await socket.ConnectAsync(uri.Host, uri.Port);
            var stream = socket.GetStream();
            await stream.WriteAsync(request);
            using var reader = new StreamReader(stream, Encoding.Latin1);
            var response = new StringBuilder();
            var buffer = new char[8192];
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            while (!response.ToString().Contains("\"error\"") && await reader.ReadAsync(buffer, timeout.Token) is > 0 and var n)
                response.Append(buffer, 0, n);
            return response.ToString();
        }

        var longPath = await RawAsync(Encoding.ASCII.GetBytes($"GET /_matrix/client/v3/{new string('a', 10_000)} HTTP/1.1\r\nHost: x\r\n\r\n"));
        Assert.StartsWith("HTTP/1.1 414", longPath);
        Assert.Contains("M_TOO_LARGE", longPath);

        var oddToken = await RawAsync([.. "GET /_matrix/client/v3/account/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "u8, 0xFF, 0xFE, .. "\r\n\r\n"u8]);
        Assert.StartsWith("HTTP/1.1 401", oddToken);
        Assert.Contains("M_UNKNOWN_TOKEN", oddToken);

        var oddContentType = await RawAsync([.. "POST /_matrix/client/v3/login HTTP/1.1\r\nHost: x\r\nContent-Type: \xff\r\nContent-Length: 2\r\n\r\n{}"u8]);
        Assert.StartsWith("HTTP/1.1 400", oddContentType);
        Assert.Contains("\"errcode\"", oddContentType);
    }
}

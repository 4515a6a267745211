using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Homeserver.Tests.Infrastructure;

/// <summary>A response as tests look at it: the status and the JSON body (null when empty or not JSON).</summary>
public sealed record MatrixResponse(HttpStatusCode Status, JsonNode? Body, string Text)
{
    public int StatusCode => (int)Status;
    public string? ErrCode => Body?["errcode"]?.GetValue<string>();

    /// <summary>Throws with the body in the message unless the status is 2xx.</summary>
    public MatrixResponse EnsureSuccess()
    {
        if (StatusCode is < 200 or > 299) throw new HttpRequestException($"Expected success, got {StatusCode}: {Text}");
        return this;
    }

    public JsonNode this[string property] => Body?[property] ?? throw new KeyNotFoundException($"No '{property}' in {Text}");
}

/// <summary>
/// JSON over HTTP for tests. Bodies may be a <see cref="JsonNode"/>, a raw string (sent as is, for malformed-input
/// tests) or any object (serialised with property names as written, e.g. <c>new { username = "alice" }</c>).
/// </summary>
public static class MatrixHttp
{
    public static Task<MatrixResponse> GetJsonAsync(this HttpClient http, string path, string? accessToken = null) =>
        http.SendJsonAsync(HttpMethod.Get, path, null, accessToken);

    public static Task<MatrixResponse> PostJsonAsync(this HttpClient http, string path, object? body, string? accessToken = null) =>
        http.SendJsonAsync(HttpMethod.Post, path, body ?? new JsonObject(), accessToken);

    public static Task<MatrixResponse> PutJsonAsync(this HttpClient http, string path, object? body, string? accessToken = null) =>
        http.SendJsonAsync(HttpMethod.Put, path, body ?? new JsonObject(), accessToken);

    public static Task<MatrixResponse> DeleteJsonAsync(this HttpClient http, string path, object? body = null, string? accessToken = null) =>
        http.SendJsonAsync(HttpMethod.Delete, path, body, accessToken);

    public static async Task<MatrixResponse> SendJsonAsync(this HttpClient http, HttpMethod method, string path, object? body, string? accessToken = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (accessToken is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", accessToken);
        if (body is not null)
        {
            var text = body switch
            {
                string s => s,
                JsonNode n => n.ToJsonString(),
                _ => JsonSerializer.Serialize(body),
            };
            request.Content = new StringContent(text, Encoding.UTF8, "application/json");
        }
        using var response = await http.SendAsync(request);
        var content = await response.Content.ReadAsStringAsync();
        JsonNode? json = null;
        if (content.Length > 0)
        {
            try { json = JsonNode.Parse(content); }
            catch (JsonException) { }
        }
        return new MatrixResponse(response.StatusCode, json, content);
    }
}

/// <summary>
/// A logged-in Matrix user talking to one silo: register (or log in) once, then call the API with the bearer token.
/// <see cref="On"/> gives the same session on another silo.
/// </summary>
/// <example>
/// <code>
/// var alice = await MatrixTestClient.RegisterAsync(cluster.Silos[0], "alice");
/// var room = await alice.PostAsync("/_matrix/client/v3/createRoom", new { name = "x" });
/// var onB = alice.On(cluster.Silos[1]);
/// </code>
/// </example>
public sealed class MatrixTestClient
{
    public const string DefaultPassword = "correct horse battery staple";
    private static int _counter;

    public TestSilo Silo { get; }
    public string UserId { get; }
    public string DeviceId { get; }
    public string AccessToken { get; }
    public string Password { get; }

    /// <summary>An HttpClient for <see cref="Silo"/> that sends the bearer token on every request.</summary>
    public HttpClient Http { get; }

    private MatrixTestClient(TestSilo silo, string userId, string deviceId, string accessToken, string password)
    {
        Silo = silo;
        UserId = userId;
        DeviceId = deviceId;
        AccessToken = accessToken;
        Password = password;
        Http = new HttpClient { BaseAddress = new Uri(silo.BaseUrl), Timeout = TimeSpan.FromSeconds(100) };
        Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", accessToken);
    }

    /// <summary>A localpart no other test in this process uses.</summary>
    public static string UniqueLocalpart(string prefix = "user") =>
        $"{prefix}{Interlocked.Increment(ref _counter)}_{Guid.NewGuid().ToString("N")[..8]}";

    /// <summary>Registers a user (with <c>m.login.dummy</c> auth in one request) and returns its session.</summary>
    public static async Task<MatrixTestClient> RegisterAsync(TestSilo silo, string? localpart = null, string password = DefaultPassword,
        string? deviceId = null)
    {
        var body = new JsonObject
        {
            ["username"] = localpart ?? UniqueLocalpart(),
            ["password"] = password,
            ["auth"] = new JsonObject { ["type"] = "m.login.dummy" },
        };
        if (deviceId is not null) body["device_id"] = deviceId;
        var r = (await silo.Http.PostJsonAsync("/_matrix/client/v3/register", body)).EnsureSuccess();
        return new MatrixTestClient(silo, r["user_id"].GetValue<string>(), r["device_id"].GetValue<string>(),
            r["access_token"].GetValue<string>(), password);
    }

    /// <summary>Logs an existing user in (a new device unless <paramref name="deviceId"/> is given).</summary>
    public static async Task<MatrixTestClient> LoginAsync(TestSilo silo, string user, string password = DefaultPassword, string? deviceId = null)
    {
        var body = new JsonObject
        {
            ["type"] = "m.login.password",
            ["identifier"] = new JsonObject { ["type"] = "m.id.user", ["user"] = user },
            ["password"] = password,
        };
        if (deviceId is not null) body["device_id"] = deviceId;
        var r = (await silo.Http.PostJsonAsync("/_matrix/client/v3/login", body)).EnsureSuccess();
        return new MatrixTestClient(silo, r["user_id"].GetValue<string>(), r["device_id"].GetValue<string>(),
            r["access_token"].GetValue<string>(), password);
    }

    /// <summary>The same session (token) talking to another silo.</summary>
    public MatrixTestClient On(TestSilo other) => new(other, UserId, DeviceId, AccessToken, Password);

    public Task<MatrixResponse> GetAsync(string path) => Http.GetJsonAsync(path);
    public Task<MatrixResponse> PostAsync(string path, object? body = null) => Http.PostJsonAsync(path, body);
    public Task<MatrixResponse> PutAsync(string path, object? body = null) => Http.PutJsonAsync(path, body);
    public Task<MatrixResponse> DeleteAsync(string path, object? body = null) => Http.DeleteJsonAsync(path, body);

    /// <summary>Percent-encodes one path segment (room, user and event ids contain ':', '!', '$', '#').</summary>
    public static string Escape(string segment) => Uri.EscapeDataString(segment);

    /// <summary>POST /createRoom; returns the room id.</summary>
    public async Task<string> CreateRoomAsync(object? body = null) =>
        (await PostAsync($"{MatrixPaths.V3}/createRoom", body ?? new JsonObject())).EnsureSuccess()["room_id"].GetValue<string>();

    public async Task JoinAsync(string roomId) =>
        (await PostAsync($"{MatrixPaths.V3}/join/{Escape(roomId)}")).EnsureSuccess();

    /// <summary>Sends an m.text message; returns its event id.</summary>
    public async Task<string> SendTextAsync(string roomId, string body, string? txn = null) =>
        (await PutAsync($"{MatrixPaths.Room(roomId)}/send/m.room.message/{txn ?? Guid.NewGuid().ToString("N")}",
            new JsonObject { ["msgtype"] = "m.text", ["body"] = body })).EnsureSuccess()["event_id"].GetValue<string>();
}

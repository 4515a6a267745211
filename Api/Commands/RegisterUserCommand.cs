using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Homeserver.Accounts;
using Microsoft.Extensions.Configuration;

namespace Homeserver.Api.Commands;

/// <summary>
/// <c>register-user</c>: creates a user or an admin on a running server from the shell, as Synapse's
/// <c>register_new_matrix_user</c> does and with its options, through shared-secret registration
/// (<c>GET/POST /_synapse/admin/v1/register</c>). It starts no server: it is an HTTP client of one.
/// </summary>
/// <example><c>dotnet run --project Api -- register-user -u alice -p secret --admin -k "$SECRET" http://localhost:8008</c></example>
public static class RegisterUserCommand
{
    public const string Name = "register-user";
    private const string DefaultServerUrl = HomeserverApp.DefaultUrl;

    private const string Usage =
        $"""
        usage: {Name} [-u USER] [-p PASSWORD | --password-file FILE] [-t USER_TYPE] [-a | --no-admin] [--exists-ok]
                      (-k SHARED_SECRET | -c CONFIG [-c CONFIG ...]) [server_url]

        Registers a new user with a running homeserver through shared-secret registration; the server must have
        Homeserver:RegistrationSharedSecret set. Prompts for what is not given.

          -u, --user USER            localpart of the new user
          -p, --password PASSWORD    its password
          --password-file FILE       a file holding its password
          -t, --user_type TYPE       bot or support
          -a, --admin                make it a server admin
          --no-admin                 make it a regular user
          --exists-ok                do not fail if the user already exists
          -k, --shared-secret SECRET the server's Homeserver:RegistrationSharedSecret
          -c, --config FILE          a JSON configuration file (appsettings.json) to read that secret from
          server_url                 default {DefaultServerUrl}
        """;

    /// <summary>Runs the command; the process's exit code (0 on success, 1 on any failure, as Synapse's script).</summary>
    public static async Task<int> RunAsync(string[] args, TextReader input, TextWriter output, TextWriter error)
    {
        string? user = null, password = null, passwordFile = null, userType = null, secret = null, serverUrl = null;
        bool? admin = null;
        var existsOk = false;
        var configFiles = new List<string>();
        for (var i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new UsageException($"{args[i]} needs a value");
            try
            {
                switch (args[i])
                {
                    case "-h" or "--help": output.WriteLine(Usage); return 0;
                    case "-u" or "--user": user = Value(); break;
                    case "-p" or "--password": password = Value(); break;
                    case "--password-file": passwordFile = Value(); break;
                    case "-t" or "--user_type": userType = Value(); break;
                    case "-a" or "--admin": admin = admin == false ? throw new UsageException("--admin and --no-admin exclude each other") : true; break;
                    case "--no-admin": admin = admin == true ? throw new UsageException("--admin and --no-admin exclude each other") : false; break;
                    case "--exists-ok": existsOk = true; break;
                    case "-k" or "--shared-secret": secret = Value(); break;
                    case "-c" or "--config": configFiles.Add(Value()); break;
                    case var a when a.StartsWith('-'): throw new UsageException($"unknown option {a}");
                    case var a when serverUrl is null: serverUrl = a; break;
                    default: throw new UsageException($"unexpected argument {args[i]}");
                }
            }
            catch (UsageException e)
            {
                error.WriteLine($"{Usage}\n{Name}: error: {e.Message}");
                return 1;
            }
        }
        if ((secret is null) == (configFiles.Count == 0))
        {
            error.WriteLine($"{Usage}\n{Name}: error: give exactly one of -k/--shared-secret and -c/--config");
            return 1;
        }
        if (password is not null && passwordFile is not null)
        {
            error.WriteLine($"{Name}: error: -p/--password and --password-file exclude each other");
            return 1;
        }
        try
        {
            secret ??= SecretFromConfiguration(configFiles);
            if (passwordFile is not null) password = (await File.ReadAllTextAsync(passwordFile)).Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException or FormatException)
        {
            error.WriteLine($"{Name}: {e.Message}");
            return 1;
        }

        if (string.IsNullOrEmpty(user))
        {
            output.Write("New user localpart: ");
            user = input.ReadLine();
            if (string.IsNullOrEmpty(user)) { output.WriteLine("Invalid user name"); return 1; }
        }
        if (string.IsNullOrEmpty(password))
        {
            password = ReadSecret("Password: ", input, output);
            if (string.IsNullOrEmpty(password)) { output.WriteLine("Password cannot be blank."); return 1; }
            if (ReadSecret("Confirm password: ", input, output) != password) { output.WriteLine("Passwords do not match"); return 1; }
        }
        if (admin is null)
        {
            output.Write("Make admin [no]: ");
            admin = input.ReadLine() is "y" or "yes" or "true";
        }
        return await RegisterAsync(serverUrl ?? DefaultServerUrl, secret, user, password, admin.Value, userType, existsOk, output);
    }

    private static async Task<int> RegisterAsync(string serverUrl, string secret, string user, string password, bool admin,
        string? userType, bool existsOk, TextWriter output)
    {
        using var http = new HttpClient { BaseAddress = new Uri(serverUrl.TrimEnd('/') + "/") };
        const string path = "_synapse/admin/v1/register";
        try
        {
            using var nonceResponse = await http.GetAsync(path);
            if (!nonceResponse.IsSuccessStatusCode) return await FailAsync(nonceResponse, output);
            var nonce = (await nonceResponse.Content.ReadFromJsonAsync<JsonObject>())?["nonce"]?.GetValue<string>()
                ?? throw new InvalidDataException("the server answered no nonce");

            output.WriteLine("Sending registration request...");
            using var response = await http.PostAsJsonAsync(path, new JsonObject
            {
                ["nonce"] = nonce,
                ["username"] = user,
                ["password"] = password,
                ["mac"] = SharedSecretRegistration.Mac(secret, nonce, user, password, admin, userType),
                ["admin"] = admin,
                ["user_type"] = userType,
            });
            if (!response.IsSuccessStatusCode)
            {
                if (existsOk && await ErrCodeAsync(response) == Homeserver.Errors.ErrorCodes.UserInUse)
                {
                    output.WriteLine("User already exists. Skipping.");
                    return 0;
                }
                return await FailAsync(response, output);
            }
            output.WriteLine("Success!");
            return 0;
        }
        catch (Exception e) when (e is HttpRequestException or InvalidDataException or System.Text.Json.JsonException or TaskCanceledException)
        {
            output.WriteLine($"ERROR! {e.Message}");
            return 1;
        }
    }

    private static async Task<int> FailAsync(HttpResponseMessage response, TextWriter output)
    {
        output.WriteLine($"ERROR! Received {(int)response.StatusCode} {response.ReasonPhrase}");
        if ((int)response.StatusCode is >= 400 and < 500 && await BodyAsync(response) is { } body && body["error"] is JsonValue message)
            output.WriteLine(message.ToString());
        return 1;
    }

    private static async Task<string?> ErrCodeAsync(HttpResponseMessage response) =>
        (await BodyAsync(response))?["errcode"] is JsonValue code ? code.ToString() : null;

    private static async Task<JsonObject?> BodyAsync(HttpResponseMessage response)
    {
        try
        {
            return JsonNode.Parse(await response.Content.ReadAsStringAsync()) as JsonObject;
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }

    /// <summary>The secret from JSON configuration files, later files over earlier ones, as the server reads them.</summary>
    private static string SecretFromConfiguration(List<string> files)
    {
        var builder = new ConfigurationBuilder();
        foreach (var file in files) builder.AddJsonFile(Path.GetFullPath(file), optional: false);
        var secret = builder.Build()[$"{HomeserverOptions.Section}:{nameof(HomeserverOptions.RegistrationSharedSecret)}"];
        return string.IsNullOrEmpty(secret)
            ? throw new InvalidDataException($"No {HomeserverOptions.Section}:{nameof(HomeserverOptions.RegistrationSharedSecret)} in {string.Join(", ", files)}")
            : secret;
    }

    /// <summary>Reads a line without echoing it when a person types it; from redirected input as it comes.</summary>
    private static string? ReadSecret(string prompt, TextReader input, TextWriter output)
    {
        output.Write(prompt);
        if (input != Console.In || Console.IsInputRedirected) return input.ReadLine();
        var typed = new System.Text.StringBuilder();
        while (Console.ReadKey(intercept: true) is var key && key.Key != ConsoleKey.Enter)
        {
            if (key.Key == ConsoleKey.Backspace) { if (typed.Length > 0) typed.Length--; }
            else typed.Append(key.KeyChar);
        }
        output.WriteLine();
        return typed.ToString();
    }

    private sealed class UsageException(string message) : Exception(message);
}

using System.Diagnostics;
using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.Admin;

/// <summary>
/// The README's <c>register-user</c> command end to end: the server a real process of the built binaries, the command
/// another (as an operator runs it on a deployment), then the created admin logging in and calling the admin API.
/// </summary>
public sealed class RegisterUserCommandTests
{
    private const string Secret = "the operator's shared secret";

    [Fact]
    public async Task The_command_creates_an_admin_on_a_running_server_who_may_then_call_the_admin_api()
    {
        var database = await TestPostgres.CreateDatabaseAsync();
        using var server = HomeserverProcess.Start("Api", database, http: true,
            $"--Homeserver:RegistrationSharedSecret={Secret}", "--Homeserver:ServerName=localhost");
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        await server.WaitReadyAsync(http);

        var created = await RunAsync(["-u", "opsadmin", "-p", "admin password", "--admin", "-k", Secret, server.Url]);
        Assert.True(created.ExitCode == 0, created.Output);
        Assert.Contains("Success!", created.Output);

        var login = (await http.PostJsonAsync($"{server.Url}/_matrix/client/v3/login", new JsonObject
        {
            ["type"] = "m.login.password", ["identifier"] = new JsonObject { ["type"] = "m.id.user", ["user"] = "opsadmin" },
            ["password"] = "admin password",
        })).EnsureSuccess();
        var token = login["access_token"].GetValue<string>();
        var users = (await http.GetJsonAsync($"{server.Url}/_synapse/admin/v2/users", token)).EnsureSuccess();
        var admin = users["users"].AsArray().Single(u => u!["name"]!.GetValue<string>() == "@opsadmin:localhost")!;
        Assert.True(admin["admin"]!.GetValue<bool>());

        // A regular user, with what is not on the command line typed at the prompts and the secret from a config file.
        var config = Path.Combine(Path.GetTempPath(), $"register-user-{Guid.NewGuid():N}.json");
        await File.WriteAllTextAsync(config, new JsonObject
        {
            ["Homeserver"] = new JsonObject { ["RegistrationSharedSecret"] = Secret },
        }.ToJsonString());
        try
        {
            var prompted = await RunAsync(["-c", config, server.Url], stdin: "opsuser\nuser password\nuser password\nno\n");
            Assert.True(prompted.ExitCode == 0, prompted.Output);
        }
        finally
        {
            File.Delete(config);
        }
        var user = (await http.GetJsonAsync($"{server.Url}/_synapse/admin/v2/users/{MatrixTestClient.Escape("@opsuser:localhost")}", token))
            .EnsureSuccess();
        Assert.False(user["admin"].GetValue<bool>());
        (await http.PostJsonAsync($"{server.Url}/_matrix/client/v3/login", new JsonObject
        {
            ["type"] = "m.login.password", ["identifier"] = new JsonObject { ["type"] = "m.id.user", ["user"] = "opsuser" },
            ["password"] = "user password",
        })).EnsureSuccess();

        // Failures are exit code 1 with the server's reason, as Synapse's script reports them.
        var taken = await RunAsync(["-u", "opsadmin", "-p", "x", "--no-admin", "-k", Secret, server.Url]);
        Assert.Equal(1, taken.ExitCode);
        Assert.Contains("User ID already taken", taken.Output);
        var existsOk = await RunAsync(["-u", "opsadmin", "-p", "x", "--no-admin", "--exists-ok", "-k", Secret, server.Url]);
        Assert.True(existsOk.ExitCode == 0, existsOk.Output);
        Assert.Contains("User already exists. Skipping.", existsOk.Output);
        var wrongSecret = await RunAsync(["-u", "intruder", "-p", "x", "-a", "-k", "guessed", server.Url]);
        Assert.Equal(1, wrongSecret.ExitCode);
        Assert.Contains("ERROR! Received 403", wrongSecret.Output);
        Assert.Contains("HMAC incorrect", wrongSecret.Output);
        var noSecret = await RunAsync(["-u", "someone", "-p", "x", server.Url]);
        Assert.Equal(1, noSecret.ExitCode);
    }

    private sealed record CommandResult(int ExitCode, string Output);

    /// <summary>Runs <c>Homeserver.Api register-user …</c> as its own process, as <c>dotnet run --project Api -- register-user …</c> does.</summary>
    private static async Task<CommandResult> RunAsync(string[] args, string stdin = "")
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        psi.ArgumentList.Add(HomeserverProcess.Binary("Api"));
        psi.ArgumentList.Add("register-user");
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var process = Process.Start(psi)!;
        await process.StandardInput.WriteAsync(stdin);
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await process.WaitForExitAsync(timeout.Token);
        return new CommandResult(process.ExitCode, await stdout + await stderr);
    }
}

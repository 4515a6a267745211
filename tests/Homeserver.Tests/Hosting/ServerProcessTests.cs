using System.Diagnostics;
using System.Net;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using System.Text;
using Homeserver.Hosting;
using Homeserver.Storage;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Hosting;

/// <summary>
/// The README's run command, as a separate process: the server on its embedded default (a private PostgreSQL under
/// the data directory), stopped by SIGTERM, started again on the same data.
/// </summary>
public sealed class ServerProcessTests
{
    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);
    private const int SigTerm = 15;

    private static HomeserverProcess Start(params string[] args) => HomeserverProcess.Start("Api", database: null, http: true, args);

    private static Task WaitReadyAsync(HomeserverProcess server, HttpClient http) => server.WaitReadyAsync(http);

    [Fact]
    public async Task Runs_on_its_private_postgres_stops_cleanly_on_sigterm_and_keeps_its_data()
    {
        if (!OperatingSystem.IsLinux()) return;
        var data = Path.Combine(Path.GetTempPath(), $"homeserver-process-{Guid.NewGuid():N}");
        Directory.CreateDirectory(data);
        File.SetUnixFileMode(data, (UnixFileMode)0b111_101_101);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        try
        {
            string userId;
            using (var first = Start($"--Homeserver:DataDirectory={data}"))
            {
                await WaitReadyAsync(first, http);
                Assert.Equal(HttpStatusCode.OK, (await http.GetAsync($"{first.Url}/health/live")).StatusCode);
                var registered = (await http.PostJsonAsync($"{first.Url}/_matrix/client/v3/register", new JsonObject
                {
                    ["username"] = "persistent", ["password"] = "kept across restarts", ["auth"] = new JsonObject { ["type"] = "m.login.dummy" },
                })).EnsureSuccess();
                userId = registered["user_id"].GetValue<string>();

                Assert.Equal(0, kill(first.Process.Id, SigTerm));
                Assert.True(first.Process.WaitForExit(60_000), $"the server did not stop on SIGTERM:\n{first.Output}");
                Assert.Equal(0, first.Process.ExitCode);
                Assert.False(File.Exists(Path.Combine(EmbeddedPostgres.DataDirectoryUnder(EmbeddedPostgres.RootIn(data)), "postmaster.pid")), "the private PostgreSQL is still running");
            }

            using var second = Start($"--Homeserver:DataDirectory={data}");
            await WaitReadyAsync(second, http);
            var login = await http.PostJsonAsync($"{second.Url}/_matrix/client/v3/login", new JsonObject
            {
                ["type"] = "m.login.password",
                ["identifier"] = new JsonObject { ["type"] = "m.id.user", ["user"] = "persistent" },
                ["password"] = "kept across restarts",
            });
            Assert.Equal(userId, login.EnsureSuccess()["user_id"].GetValue<string>());
            kill(second.Process.Id, SigTerm);
            Assert.True(second.Process.WaitForExit(60_000), second.Output);
        }
        finally
        {
            try { Directory.Delete(data, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    [Fact]
    public void Without_postgres_binaries_or_a_connection_string_it_exits_and_says_what_to_install()
    {
        var empty = Path.Combine(Path.GetTempPath(), $"homeserver-nobin-{Guid.NewGuid():N}");
        Directory.CreateDirectory(empty);
        try
        {
            using var server = Start($"--Homeserver:DataDirectory={Path.Combine(empty, "data")}", $"--Homeserver:PostgresBinaries={empty}");
            Assert.True(server.Process.WaitForExit(60_000), server.Output);
            server.Process.WaitForExit(); // returns once the redirected output has been read to the end
            Assert.Equal(2, server.Process.ExitCode);
            Assert.Contains("initdb", server.Output);
            Assert.Contains("Homeserver:Postgres", server.Output);
        }
        finally
        {
            Directory.Delete(empty, true);
        }
    }
}

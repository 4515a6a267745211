using Homeserver.Storage;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Homeserver.Tests.Infrastructure;

/// <summary>
/// One throwaway PostgreSQL for the whole test run, started the way the server starts its private one (fsync off),
/// in a fresh temporary folder; or the server named by <c>HOMESERVER_TEST_POSTGRES</c>. Each cluster or test gets its
/// own database, so tests never see each other's rows.
/// </summary>
public static class TestPostgres
{
    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static string? _serverConnectionString;
    private static EmbeddedPostgres? _embedded;

    public static async Task<string> ServerConnectionStringAsync()
    {
        await Gate.WaitAsync();
        try
        {
            if (_serverConnectionString is not null) return _serverConnectionString;
            var configured = Environment.GetEnvironmentVariable("HOMESERVER_TEST_POSTGRES");
            if (!string.IsNullOrWhiteSpace(configured))
                return _serverConnectionString = configured;

            var folder = Path.Combine(Path.GetTempPath(), $"homeserver-tests-{Guid.NewGuid():N}");
            Directory.CreateDirectory(folder);
            if (!OperatingSystem.IsWindows())
                File.SetUnixFileMode(folder, (UnixFileMode)0b111_101_101);
            _embedded = new EmbeddedPostgres(folder, NullLogger.Instance, fsync: false);
            await _embedded.StartAsync();
            AppDomain.CurrentDomain.ProcessExit += (_, _) =>
            {
                _embedded.StopAsync().GetAwaiter().GetResult();
                try { Directory.Delete(folder, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            };
            return _serverConnectionString = _embedded.ConnectionString();
        }
        finally { Gate.Release(); }
    }

    /// <summary>A new empty database; returns its connection string.</summary>
    public static async Task<string> CreateDatabaseAsync()
    {
        var server = await ServerConnectionStringAsync();
        var name = $"hs_test_{Guid.NewGuid():N}";
        await using (var conn = new NpgsqlConnection(server))
        {
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand($"CREATE DATABASE {name}", conn);
            await cmd.ExecuteNonQueryAsync();
        }
        return new NpgsqlConnectionStringBuilder(server) { Database = name }.ConnectionString;
    }
}

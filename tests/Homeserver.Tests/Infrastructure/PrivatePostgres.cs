using Homeserver.Storage;
using Microsoft.Extensions.Logging.Abstractions;

namespace Homeserver.Tests.Infrastructure;

/// <summary>
/// A PostgreSQL of one test's own, in a fresh temporary folder, for tests that stop, crash and restart the database
/// under a running server (the shared <see cref="TestPostgres"/> must stay up for everyone else).
/// </summary>
public sealed class PrivatePostgres : IAsyncDisposable
{
    private readonly string _folder;

    public EmbeddedPostgres Server { get; }

    private PrivatePostgres(string folder, EmbeddedPostgres server)
    {
        _folder = folder;
        Server = server;
    }

    public static async Task<PrivatePostgres> StartAsync(bool fsync = false, string? alsoListenOn = null)
    {
        var folder = Path.Combine(Path.GetTempPath(), $"homeserver-pg-{Guid.NewGuid():N}");
        Directory.CreateDirectory(folder);
        // The postgres user must reach the folder when the tests run as root.
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(folder, (UnixFileMode)0b111_101_101);
        var server = new EmbeddedPostgres(folder, NullLogger.Instance, fsync: fsync, alsoListenOn: alsoListenOn);
        await server.StartAsync();
        return new PrivatePostgres(folder, server);
    }

    /// <summary>A connection string that gives up connecting after 3 s, so requests during an outage fail fast.</summary>
    public string ConnectionString => Server.ConnectionString() + ";Timeout=3";

    public async ValueTask DisposeAsync()
    {
        await Server.StopAsync();
        try { Directory.Delete(_folder, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

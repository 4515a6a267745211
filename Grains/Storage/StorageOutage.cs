using System.Net.Sockets;
using Homeserver.Errors;
using Npgsql;

namespace Homeserver.Storage;

/// <summary>
/// Tells PostgreSQL being unavailable (refused or lost connections, shutting down or starting up, out of connections,
/// timeouts) from an error in what was asked of it.
/// </summary>
public static class StorageOutage
{
    public static bool Is(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            switch (e)
            {
                case DependencyUnavailableException:
                case SocketException:
                case PostgresException { SqlState: var state } when IsUnavailableState(state):
                case NpgsqlException { IsTransient: true } and not PostgresException:
                    return true;
            }
        }
        return false;
    }

    /// <summary>
    /// Runs an activation's loading: activation failures reach the caller without passing grain call filters, so an
    /// <c>OnActivateAsync</c> that reads the database translates an outage itself.
    /// </summary>
    public static async Task<T> DuringActivationAsync<T>(Func<Task<T>> load)
    {
        try
        {
            return await load();
        }
        catch (Exception e) when (e is not DependencyUnavailableException && Is(e))
        {
            throw Unavailable(e);
        }
    }

    /// <inheritdoc cref="DuringActivationAsync{T}"/>
    public static Task DuringActivationAsync(Func<Task> load) =>
        DuringActivationAsync(async () => { await load(); return true; });

    public static DependencyUnavailableException Unavailable(Exception e) => new($"The database is unavailable: {e.Message}");

    // Connection exceptions (08), insufficient resources (53: too many connections, out of memory or disk), operator
    // intervention (57P01-57P05: shutdown, crash, starting up, idle timeouts), system errors (58).
    private static bool IsUnavailableState(string state) =>
        state.StartsWith("08", StringComparison.Ordinal) || state.StartsWith("53", StringComparison.Ordinal)
        || state.StartsWith("57P", StringComparison.Ordinal) || state.StartsWith("58", StringComparison.Ordinal);
}

/// <summary>
/// Every grain call: a storage outage leaves the grain as <see cref="DependencyUnavailableException"/>, which crosses
/// silos (Npgsql's exceptions have no Orleans codec, so the caller on another silo would get a codec error instead).
/// </summary>
public sealed class StorageOutageCallFilter : IIncomingGrainCallFilter
{
    public async Task Invoke(IIncomingGrainCallContext context)
    {
        try
        {
            await context.Invoke();
        }
        catch (Exception e) when (e is not DependencyUnavailableException && StorageOutage.Is(e))
        {
            throw StorageOutage.Unavailable(e);
        }
    }
}

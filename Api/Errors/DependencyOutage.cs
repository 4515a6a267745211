using Homeserver.Hosting;
using Homeserver.Storage;
using Homeserver.Streams;

namespace Homeserver.Api.Errors;

/// <summary>
/// Tells a failure of something the server depends on (PostgreSQL down, a silo gone, a grain call that timed out) from
/// a bug: the first is answered 503 with <c>Retry-After</c> (the client retries and the server recovers by itself),
/// the second 500.
/// </summary>
public static class DependencyOutage
{
    /// <summary>What the client is told to wait before retrying, in seconds.</summary>
    public const int RetryAfterSeconds = 2;

    public static bool Is(Exception exception)
    {
        if (StorageOutage.Is(exception) || SiloLossRetryFilter.IsSiloLoss(exception)) return true;
        for (var e = exception; e is not null; e = e.InnerException)
        {
            switch (e)
            {
                case StreamUnavailableException or TimeoutException:
                    return true;
                case AggregateException aggregate when aggregate.InnerExceptions.Any(Is):
                    return true;
            }
        }
        return false;
    }
}

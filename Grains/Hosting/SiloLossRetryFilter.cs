using System.Collections.Concurrent;
using System.Reflection;
using Microsoft.Extensions.Logging;
using Orleans.Runtime;

namespace Homeserver.Hosting;

/// <summary>
/// Calls to <see cref="IdempotentAttribute"/> grain methods that fail because the silo serving them went away (the
/// connection broke, or the message was rejected as the silo left) are made again, with backoff, until
/// <see cref="RetryWindow"/> has passed: once membership has declared the silo dead the grain activates elsewhere and
/// answers, so a client request in flight across a <c>kill -9</c> succeeds instead of failing. A call that timed out
/// is made again too: through a front end without a silo, a request whose gateway died after passing it on can have
/// its answer lost on the way back, and only the timeout tells (the method being idempotent, asking again is safe).
/// Other calls fail as before (they answer 503 with <c>Retry-After</c>).
/// </summary>
public sealed class SiloLossRetryFilter(ILogger<SiloLossRetryFilter> logger) : IOutgoingGrainCallFilter
{
    /// <summary>Longer than failure detection takes with the default membership settings (about 4 s).</summary>
    public static readonly TimeSpan RetryWindow = TimeSpan.FromSeconds(20);

    private static readonly ConcurrentDictionary<MethodInfo, bool> Idempotent = new();

    public async Task Invoke(IOutgoingGrainCallContext context)
    {
        var method = context.InterfaceMethod;
        if (method is null || !Idempotent.GetOrAdd(method, m => m.GetCustomAttribute<IdempotentAttribute>() is not null))
        {
            await context.Invoke();
            return;
        }
        var deadline = DateTime.UtcNow + RetryWindow;
        var delay = TimeSpan.FromMilliseconds(50);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await context.Invoke();
                if (attempt > 1) logger.LogInformation("{Method} on {Grain} succeeded after {Attempts} attempts", method.Name, context.TargetId, attempt);
                return;
            }
            catch (Exception e) when ((IsSiloLoss(e) || e is TimeoutException) && DateTime.UtcNow + delay < deadline)
            {
                logger.LogDebug("{Method} on {Grain} failed ({Error}); retrying in {Delay}", method.Name, context.TargetId, e.GetType().Name, delay);
                await Task.Delay(delay);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(1).Ticks));
            }
        }
    }

    /// <summary>The call did not reach a live activation, or its silo died before answering.</summary>
    public static bool IsSiloLoss(Exception e) => e switch
    {
        SiloUnavailableException or OrleansMessageRejectionException => true,
        // Orleans' connection failures (ConnectionFailedException, ConnectionAbortedException) are internal types.
        _ when e.GetType().Name is "ConnectionFailedException" or "ConnectionAbortedException" => true,
        _ => e.InnerException is { } inner && IsSiloLoss(inner),
    };
}

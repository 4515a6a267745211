using Homeserver.Streams;

namespace Homeserver.Api.Endpoints;

/// <summary>The per-user and ephemeral stream areas: push rules, account data, to-device, typing, receipts, presence.</summary>
public static class UserStreamEndpoints
{
    public static IEndpointRouteBuilder MapUserStreamEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapPushRuleEndpoints();
        app.MapAccountDataEndpoints();
        return app;
    }
}

internal static class UserStreamWrites
{
    private static readonly TimeSpan ReadYourWritesTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Waits (bounded) until this silo's reader has applied a write to one of the single-writer user streams.</summary>
    public static async Task WaitAsync(StreamNotifier notifier, string stream, long position, CancellationToken ct)
    {
        if (position <= 0) return;
        await notifier.WaitForTokenAsync(notifier.Current.Advance(stream, 0, position), ReadYourWritesTimeout, ct);
    }
}

using System.Net;
using Homeserver.Outbound;
using Homeserver.Pushers;
using Homeserver.Streams;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

// In the hosting namespace so AddHomeserverServices needs no extra using.
namespace Homeserver.Hosting;

public static class PusherHostingExtensions
{
    /// <summary>Push delivery on one process: the pushers table, the directory of users with pushers (kept by this
    /// process's reader), the gateway client behind the outbound address policy, and the sweep.</summary>
    public static IServiceCollection AddHomeserverPushers(this IServiceCollection services)
    {
        services.AddSingleton<PusherStore>();
        services.AddSingleton<PusherDirectory>();
        services.AddSingleton<IStreamRowHandler>(sp => sp.GetRequiredService<PusherDirectory>());
        services.AddSingleton<IStreamRowPersister, PushersChangedPersister>();
        services.AddSingleton(sp => new OutboundAddressPolicy(sp.GetRequiredService<IOptions<HomeserverOptions>>().Value.Push.AllowedNetworks));
        services.AddSingleton<PushGatewayClient>();
        services.AddHttpClient(PushGatewayClient.HttpClientName, client =>
            {
                client.MaxResponseContentBufferSize = 64 * 1024;
                client.DefaultRequestHeaders.UserAgent.ParseAdd("Homeserver-Pusher");
            })
            // The client's own request logs would put every push (and a stack trace per refused one) in the log at
            // Information; PushGatewayClient logs what an operator needs.
            .RemoveAllLoggers()
            .ConfigurePrimaryHttpMessageHandler(sp => new SocketsHttpHandler
                {
                    ConnectCallback = sp.GetRequiredService<OutboundAddressPolicy>().ConnectAsync,
                    AllowAutoRedirect = false, // a redirect could point inside; gateways do not redirect
                    PooledConnectionLifetime = TimeSpan.FromMinutes(5),
                    AutomaticDecompression = DecompressionMethods.None,
                }.AllowInsecureForTesting(sp.GetRequiredService<IOptions<HomeserverOptions>>().Value.Push.InsecureSkipCertificateValidationForTesting,
                    sp.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(PushGatewayClient)), "Push gateways",
                    "Homeserver:Push:InsecureSkipCertificateValidationForTesting"));
        services.AddHostedService<PusherSweep>();
        return services;
    }
}

using System.Net;
using Homeserver.Media;
using Homeserver.Outbound;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

// In the hosting namespace so the front end needs no extra using.
namespace Homeserver.Hosting;

public static class MediaHostingExtensions
{
    /// <summary>The media repository: the store (front ends stream content through it; the account grain deletes an
    /// erased user's uploads), and URL previews through their own HTTP client behind the outbound address policy
    /// (with the media section's allowed networks, not the pushers').</summary>
    public static IServiceCollection AddHomeserverMedia(this IServiceCollection services)
    {
        services.AddSingleton<MediaStore>();
        services.AddSingleton<UrlPreviewer>();
        services.AddHttpClient(UrlPreviewer.HttpClientName, client =>
            {
                client.DefaultRequestHeaders.UserAgent.ParseAdd("Homeserver-UrlPreview");
                client.Timeout = Timeout.InfiniteTimeSpan; // UrlPreviewer bounds each preview as a whole
            })
            .RemoveAllLoggers()
            .ConfigurePrimaryHttpMessageHandler(sp =>
            {
                var settings = sp.GetRequiredService<IOptions<HomeserverOptions>>().Value.Media;
                var policy = new OutboundAddressPolicy(settings.PreviewAllowedNetworks, "Homeserver:Media:PreviewAllowedNetworks");
                return new SocketsHttpHandler
                {
                    // Every connection, redirects' included, goes through the policy: a redirect cannot lead inside.
                    ConnectCallback = policy.ConnectAsync,
                    AllowAutoRedirect = true,
                    MaxAutomaticRedirections = 5,
                    UseProxy = false,
                    UseCookies = false,
                    AutomaticDecompression = DecompressionMethods.GZip | DecompressionMethods.Deflate | DecompressionMethods.Brotli,
                    PooledConnectionLifetime = TimeSpan.FromMinutes(2),
                }.AllowInsecureForTesting(settings.InsecureSkipCertificateValidationForTesting,
                    sp.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(UrlPreviewer)), "Previewed sites",
                    "Homeserver:Media:InsecureSkipCertificateValidationForTesting");
            });
        return services;
    }
}

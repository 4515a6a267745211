using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace Homeserver.Outbound;

/// <summary>
/// Which addresses the server may connect to on a user's say-so (a pusher's gateway URL, a previewed link): public ones, and of the
/// private, loopback, link-local and reserved ranges only those the operator allowed. Checked on the address actually
/// connected to, after name resolution, so a name that resolves to an internal address is refused too.
/// </summary>
public sealed class OutboundAddressPolicy
{
    private static readonly IPNetwork[] Refused =
    [
        .. new[]
        {
            "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
            "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
            "224.0.0.0/4", "240.0.0.0/4", "::/128", "::1/128", "fe80::/10", "fc00::/7", "fec0::/10", "ff00::/8", "2001:db8::/32",
        }.Select(IPNetwork.Parse),
    ];

    private readonly IPNetwork[] _allowed;

    /// <param name="allowedNetworks">Private networks the operator allowed, in CIDR notation.</param>
    /// <param name="setting">The configuration key they came from, named when one is not a network.</param>
    public OutboundAddressPolicy(IEnumerable<string> allowedNetworks, string setting = "Homeserver:Push:AllowedNetworks") =>
        _allowed = allowedNetworks.Select(n => IPNetwork.TryParse(n, out var network)
            ? network
            : throw new ArgumentException($"'{n}' is not a network in CIDR notation ({setting})")).ToArray();

    public bool IsAllowed(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        if (_allowed.Any(n => n.Contains(address))) return true;
        return !Refused.Any(n => n.Contains(address));
    }

    /// <summary>A <see cref="SocketsHttpHandler.ConnectCallback"/> that connects only to allowed addresses.</summary>
    public async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken ct)
    {
        var host = context.DnsEndPoint.Host;
        var addresses = IPAddress.TryParse(host.Trim('[', ']'), out var literal) ? [literal] : await Dns.GetHostAddressesAsync(host, ct);
        var permitted = addresses.Where(IsAllowed).ToArray();
        if (permitted.Length == 0)
            throw new OutboundAddressRefusedException($"Refusing to connect to {host}: its addresses are in a private or reserved network");
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(permitted, context.DnsEndPoint.Port, ct);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}

/// <summary>Where a test rig may turn certificate checks off for one kind of user-directed connection.</summary>
public static class OutboundTls
{
    /// <summary>Accepts any server certificate on <paramref name="handler"/> when <paramref name="insecure"/>, logging
    /// loudly that <paramref name="what"/>'s certificates are not checked (the setting is for test rigs only).</summary>
    public static SocketsHttpHandler AllowInsecureForTesting(this SocketsHttpHandler handler, bool insecure, ILogger logger,
        string what, string setting)
    {
        if (!insecure) return handler;
        logger.LogWarning("{What}' TLS certificates are NOT checked ({Setting}): for test rigs only", what, setting);
        handler.SslOptions = new SslClientAuthenticationOptions { RemoteCertificateValidationCallback = (_, _, _, _) => true };
        return handler;
    }
}

/// <summary>A connection the <see cref="OutboundAddressPolicy"/> refused (inside <see cref="HttpClient"/>'s own
/// <see cref="HttpRequestException"/>).</summary>
public sealed class OutboundAddressRefusedException(string message) : HttpRequestException(message)
{
    /// <summary>Whether <paramref name="e"/> is, or wraps, a refusal.</summary>
    public static bool IsRefusal(Exception e) => e is OutboundAddressRefusedException || e.InnerException is OutboundAddressRefusedException;
}

using System.Net;
using System.Net.Sockets;

namespace Homeserver.Hosting;

/// <summary>Free TCP ports on 127.0.0.1 (the private PostgreSQL, and test and benchmark silos and front ends).</summary>
public static class LoopbackPorts
{
    /// <summary>A port the OS had free a moment ago (another process may take it before it is used).</summary>
    public static int Free()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    public static bool IsFree(int port)
    {
        try
        {
            var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            listener.Stop();
            return true;
        }
        catch (SocketException) { return false; }
    }
}

using System.Net;
using System.Net.Sockets;

namespace Homeserver.Hosting;

/// <summary>Free TCP ports on 127.0.0.1 (the private PostgreSQL, and test and benchmark silos and front ends).</summary>
public static class LoopbackPorts
{
    // Below Linux's default ephemeral range (32768-60999): a port the OS hands out for bind(0) can be taken by any
    // outgoing connection's local end before the caller binds it, which made busy test runs fail now and then.
    private const int RangeStart = 20_000;
    private const int RangeSize = 12_000;
    private static int _next = Random.Shared.Next(RangeSize);

    /// <summary>A loopback port that was free a moment ago, from a range outgoing connections do not use; successive
    /// calls in one process never repeat a port until the range wraps (another process may still take it).</summary>
    public static int Free()
    {
        for (var tries = 0; tries < RangeSize; tries++)
        {
            var port = RangeStart + (int)((uint)Interlocked.Increment(ref _next) % RangeSize);
            if (IsFree(port)) return port;
        }
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var any = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return any;
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

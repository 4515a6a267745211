using System.Diagnostics;

namespace Homeserver.Tests.Infrastructure;

/// <summary>
/// A network namespace of the test's own, joined to this machine by a veth pair on a private /30 (host side .1,
/// namespace side .2): a process started in it (<see cref="Launcher"/>) is a host of its own, and taking the host's
/// end of the link down cuts it off from everything (database, other silos) without a word to anyone, as a network
/// partition does. Needs root and iproute2; <see cref="TryCreate"/> says why not where the machine cannot.
/// </summary>
public sealed class NetworkNamespace : IDisposable
{
    private readonly string _name;
    private readonly string _hostLink;

    public string HostAddress { get; }
    public string NamespaceAddress { get; }

    /// <summary>Prefix for a command that should run inside the namespace.</summary>
    public string[] Launcher => ["ip", "netns", "exec", _name];

    private NetworkNamespace(string name, string hostLink, string hostAddress, string namespaceAddress)
    {
        _name = name;
        _hostLink = hostLink;
        HostAddress = hostAddress;
        NamespaceAddress = namespaceAddress;
    }

    public static NetworkNamespace? TryCreate(out string whyNot)
    {
        whyNot = "";
        if (!OperatingSystem.IsLinux() || !Storage.EmbeddedPostgres.IsRoot)
        {
            whyNot = "network namespaces need Linux and root";
            return null;
        }
        var id = Random.Shared.Next(0x1000, 0xffff).ToString("x");
        var name = $"hs-part-{id}";
        var (hostLink, nsLink) = ($"hsh{id}", $"hsn{id}");
        var subnet = $"10.{200 + Random.Shared.Next(50)}.{Random.Shared.Next(250)}";
        var net = new NetworkNamespace(name, hostLink, $"{subnet}.1", $"{subnet}.2");
        string[][] setup =
        [
            ["netns", "add", name],
            ["link", "add", hostLink, "type", "veth", "peer", "name", nsLink],
            ["link", "set", nsLink, "netns", name],
            ["addr", "add", $"{subnet}.1/30", "dev", hostLink],
            ["link", "set", hostLink, "up"],
            ["netns", "exec", name, "ip", "addr", "add", $"{subnet}.2/30", "dev", nsLink],
            ["netns", "exec", name, "ip", "link", "set", nsLink, "up"],
            ["netns", "exec", name, "ip", "link", "set", "lo", "up"],
        ];
        foreach (var step in setup)
        {
            var (ok, error) = Ip(step);
            if (ok) continue;
            whyNot = $"ip {string.Join(' ', step)} failed: {error}";
            net.Dispose();
            return null;
        }
        return net;
    }

    /// <summary>The partition: the namespace loses every link to the host (packets are dropped, nothing is reset).</summary>
    public void Cut() => Require(Ip(["link", "set", _hostLink, "down"]));

    public void Heal() => Require(Ip(["link", "set", _hostLink, "up"]));

    public void Dispose()
    {
        Ip(["link", "del", _hostLink]);
        Ip(["netns", "del", _name]);
    }

    private static void Require((bool Ok, string Error) result) => Assert.True(result.Ok, result.Error);

    private static (bool Ok, string Error) Ip(string[] args)
    {
        try
        {
            var psi = new ProcessStartInfo("ip") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
            foreach (var a in args) psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            var error = p.StandardError.ReadToEnd();
            if (!p.WaitForExit(10_000)) { p.Kill(); return (false, "timed out"); }
            return (p.ExitCode == 0, error.Trim());
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (false, e.Message);
        }
    }
}

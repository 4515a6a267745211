using System.Net;
using Homeserver.Outbound;
using Homeserver.Pushers;

namespace Homeserver.Tests.Unit;

public sealed class OutboundAddressPolicyTests
{
    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("10.1.2.3")]
    [InlineData("172.20.0.1")]
    [InlineData("192.168.1.1")]
    [InlineData("169.254.169.254")]
    [InlineData("100.64.0.1")]
    [InlineData("0.0.0.0")]
    [InlineData("::1")]
    [InlineData("fe80::1")]
    [InlineData("fd00::1")]
    [InlineData("::ffff:127.0.0.1")]
    public void Private_loopback_and_link_local_addresses_are_refused_by_default(string address) =>
        Assert.False(new OutboundAddressPolicy([]).IsAllowed(IPAddress.Parse(address)));

    [Theory]
    [InlineData("8.8.8.8")]
    [InlineData("2606:4700:4700::1111")]
    public void Public_addresses_are_allowed(string address) =>
        Assert.True(new OutboundAddressPolicy([]).IsAllowed(IPAddress.Parse(address)));

    [Fact]
    public void The_operator_can_allow_a_private_network()
    {
        var policy = new OutboundAddressPolicy(["127.0.0.0/8"]);
        Assert.True(policy.IsAllowed(IPAddress.Parse("127.0.0.5")));
        Assert.True(policy.IsAllowed(IPAddress.Parse("::ffff:127.0.0.5")));
        Assert.False(policy.IsAllowed(IPAddress.Parse("10.0.0.1")));
        Assert.Throws<ArgumentException>(() => new OutboundAddressPolicy(["not a network"]));
    }

    [Fact]
    public async Task A_connection_to_a_refused_address_is_never_opened()
    {
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        using var client = new HttpClient(new SocketsHttpHandler { ConnectCallback = new OutboundAddressPolicy([]).ConnectAsync });
        var refused = await Assert.ThrowsAsync<HttpRequestException>(() => client.GetAsync($"http://127.0.0.1:{port}/"));
        Assert.Contains("private or reserved", refused.Message);
        Assert.False(listener.Pending());
    }
}

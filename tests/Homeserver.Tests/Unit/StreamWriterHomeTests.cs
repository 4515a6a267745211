using Homeserver.Streams;
using Orleans.Runtime;

namespace Homeserver.Tests.Unit;

/// <summary>An operator's pin decides a writer's home while the pinned silo is active, whatever its generation.</summary>
public sealed class StreamWriterHomeTests
{
    private static SiloAddress Silo(int port, int generation) =>
        SiloAddress.New(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, port), generation);

    [Fact]
    public void A_pinned_writer_lives_on_its_silo_while_it_is_active_and_on_its_hash_home_otherwise()
    {
        var silos = new[] { Silo(11111, 1), Silo(11112, 1), Silo(11113, 1) };
        const string key = "events/0";
        var hashHome = StreamWriterHome.Choose(key, silos);
        var other = silos.First(s => !s.Equals(hashHome));

        Assert.Equal(other, StreamWriterHome.Choose(key, silos, StreamWriterHome.Endpoint(other)));
        // The pin names host:port, so it holds for the silo's next generation (a restart) too.
        var restarted = silos.Select(s => s.Equals(other) ? Silo(other.Endpoint.Port, 2) : s).ToArray();
        Assert.Equal(other.Endpoint, StreamWriterHome.Choose(key, restarted, StreamWriterHome.Endpoint(other)).Endpoint);
        // A pinned silo that is not active does not hold the writer.
        Assert.Equal(hashHome, StreamWriterHome.Choose(key, silos.Where(s => !s.Equals(other)).ToList(), StreamWriterHome.Endpoint(other)));
    }
}

using Homeserver.Rooms;
using Homeserver.Streams;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Rooms;

/// <summary>A 2-silo cluster shared by the room grain tests of one class.</summary>
public sealed class RoomClusterFixture : TwoSiloCluster
{
    public IRoomGrain Room(string roomId, int silo = 0) => Cluster.Silos[silo].Grains.GetGrain<IRoomGrain>(roomId);

    public RoomEventStore Store(int silo) => Cluster.Silos[silo].Get<RoomEventStore>();

    /// <summary>Waits until a silo's reader has applied a write (what an endpoint does for read-your-writes).</summary>
    public async Task WaitAsync(int silo, RoomWriteResult write)
    {
        var notifier = Cluster.Silos[silo].Get<StreamNotifier>();
        Assert.True(await notifier.WaitForTokenAsync(notifier.Current.Advance(StreamNames.Events, write.Writer, write.Position), TimeSpan.FromSeconds(10)),
            $"silo {silo} did not reach events/{write.Writer}@{write.Position}");
    }

    public static string NewRoomId() => Matrix.Identifiers.NewRoomId("localhost");

    public static CreateRoomCommand Create(string creator, string preset = "private_chat", string version = "10",
        string? name = null, string? topic = null, string? alias = null, string[]? invite = null,
        string? powerOverride = null, string[]? initialState = null, string? creationContent = null, bool isDirect = false) =>
        new(creator, "DEV", version, preset, preset == "public_chat", name, topic, alias, invite ?? [], isDirect,
            creationContent, powerOverride, initialState ?? []);
}

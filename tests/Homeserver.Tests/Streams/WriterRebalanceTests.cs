using System.Collections.Concurrent;
using Homeserver.Streams;
using Homeserver.Tests.Infrastructure;
using Npgsql;
using Orleans.Runtime;

namespace Homeserver.Tests.Streams;

/// <summary>Writers spread over the silos by rendezvous hashing and move live when the membership settles.</summary>
public sealed class WriterRebalanceTests
{
    private static SiloAddress Address(TestSilo silo) => silo.Get<ILocalSiloDetails>().SiloAddress;

    private static async Task<Dictionary<string, WriterPosition>> PositionsAsync(HomeserverTestCluster cluster, IEnumerable<string> keys) =>
        (await Task.WhenAll(keys.Select(async k => (k, await cluster.Silos[0].Grains.GetGrain<IStreamWriterGrain>(k).GetPositionAsync()))))
        .ToDictionary(p => p.k, p => p.Item2);

    /// <summary>Waits until every writer runs on its home among <paramref name="silos"/>.</summary>
    private static async Task<Dictionary<string, WriterPosition>> AllHomeAsync(HomeserverTestCluster cluster, List<string> keys, List<SiloAddress> silos)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            var positions = await PositionsAsync(cluster, keys);
            var away = keys.Where(k => positions[k].Silo != StreamWriterHome.Choose(k, silos).ToString()).ToList();
            if (away.Count == 0) return positions;
            Assert.True(DateTime.UtcNow < deadline, $"not at home after 30 s: {string.Join(", ", away)}");
            await Task.Delay(200);
        }
    }

    [Fact]
    public async Task Writers_move_home_once_silos_settle_a_joining_silo_takes_only_its_share_and_no_acknowledged_append_is_lost()
    {
        await using var cluster = await HomeserverTestCluster.StartAsync(2, new Dictionary<string, string?> { ["Homeserver:WriterRebalanceDelay"] = "00:00:01" });
        var keys = cluster.Silos[0].Get<SiloStreamReader>().Writers().Select(w => StreamNames.WriterKey(w.Stream, w.Writer)).ToList();

        // Appends keep going through every events writer while writers move.
        var acknowledged = new ConcurrentDictionary<string, (int Writer, long Position)>();
        using var stop = new CancellationTokenSource();
        var appenders = Enumerable.Range(0, 2).Select(w => Task.Run(async () =>
        {
            var writer = cluster.Silos[1].Grains.GetGrain<IStreamWriterGrain>(StreamNames.WriterKey(StreamNames.Events, w));
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                var id = $"w{w}-{i}";
                try { acknowledged[id] = (w, (await writer.AppendAsync([new StreamRow("test", null, $"{{\"p\":\"{id}\"}}")])).LastPosition); }
                catch (Exception) { await Task.Delay(20); } // a move in progress: not acknowledged, so nothing to keep
                await Task.Delay(2);
            }
        })).ToList();

        var two = new List<SiloAddress> { Address(cluster.Silos[0]), Address(cluster.Silos[1]) };
        // Every writer started on the first silo; those whose home is the second move there (which ones depends on
        // the silos' ports: the spread itself is checked on fixed addresses below).
        await AllHomeAsync(cluster, keys, two);

        var third = await cluster.StartSiloAsync();
        var three = two.Append(Address(third)).ToList();
        await AllHomeAsync(cluster, keys, three);

        await Task.Delay(300);
        stop.Cancel();
        await Task.WhenAll(appenders);
        Assert.True(acknowledged.Count > 100, $"only {acknowledged.Count} appends acknowledged");

        // Every acknowledged append is in the log at its position, and every silo's reader got that far.
        var target = StreamToken.Zero;
        foreach (var (writer, position) in acknowledged.Values) target = target.Advance(StreamNames.Events, writer, position);
        foreach (var silo in cluster.Silos)
            Assert.True(await silo.Get<StreamNotifier>().WaitForTokenAsync(target, TimeSpan.FromSeconds(10)), "a silo's reader did not catch up");
        await using var db = NpgsqlDataSource.Create(cluster.ConnectionString);
        await using var cmd = db.CreateCommand("SELECT payload FROM stream_log WHERE stream = 'events' AND kind = 'test'");
        var logged = new HashSet<string>();
        await using (var reader = await cmd.ExecuteReaderAsync())
            while (await reader.ReadAsync()) logged.Add(reader.GetString(0));
        Assert.All(acknowledged.Keys, id => Assert.Contains($"{{\"p\":\"{id}\"}}", logged));
    }

    [Fact]
    public void A_silo_joining_or_leaving_changes_the_home_of_its_own_writers_only()
    {
        var silos = Enumerable.Range(0, 5).Select(i => SiloAddress.New(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 11111 + i), 1000 + i)).ToList();
        var keys = Enumerable.Range(0, 400).Select(i => StreamNames.WriterKey(StreamNames.Events, i)).ToList();
        var four = silos.Take(4).ToList();
        var homes = keys.ToDictionary(k => k, k => StreamWriterHome.Choose(k, four));
        Assert.All(four, s => Assert.InRange(homes.Values.Count(h => h.Equals(s)), 60, 140)); // about a quarter each

        var moved = keys.Where(k => !StreamWriterHome.Choose(k, silos).Equals(homes[k])).ToList();
        Assert.All(moved, k => Assert.Equal(silos[4], StreamWriterHome.Choose(k, silos)));
        Assert.InRange(moved.Count, 40, 120); // about a fifth

        var withoutFirst = four.Skip(1).ToList();
        Assert.All(keys.Where(k => !homes[k].Equals(four[0])), k => Assert.Equal(homes[k], StreamWriterHome.Choose(k, withoutFirst)));
        // The order the silos are listed in does not matter.
        Assert.All(keys, k => Assert.Equal(homes[k], StreamWriterHome.Choose(k, Enumerable.Reverse(four).ToList())));
    }
}

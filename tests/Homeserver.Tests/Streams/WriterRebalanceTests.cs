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
        // No backstop polling: readers learn of rows only by push, so they must stay subscribed across moves.
        await using var cluster = await HomeserverTestCluster.StartAsync(2, new Dictionary<string, string?>
        {
            ["Homeserver:WriterRebalanceDelay"] = "00:00:01",
            ["Homeserver:ReaderBackstopPeriod"] = "01:00:00",
        });
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
        var atTwo = await AllHomeAsync(cluster, keys, two);
        Assert.Contains(atTwo.Values, p => p.Silo == two[0].ToString());
        Assert.Contains(atTwo.Values, p => p.Silo == two[1].ToString());

        var third = await cluster.StartSiloAsync();
        var three = two.Append(Address(third)).ToList();
        var atThree = await AllHomeAsync(cluster, keys, three);
        foreach (var key in keys)
        {
            // Rendezvous hashing: a writer whose home is not the new silo stays where it was, in the same activation.
            if (StreamWriterHome.Choose(key, three).Equals(StreamWriterHome.Choose(key, two)))
                Assert.Equal(atTwo[key].Epoch, atThree[key].Epoch);
        }
        Assert.Contains(keys, k => StreamWriterHome.Choose(k, three).Equals(three[2]));

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
}

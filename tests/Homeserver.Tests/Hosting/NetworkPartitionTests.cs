using Homeserver.Tests.Infrastructure;
using Npgsql;
using Xunit.Abstractions;

namespace Homeserver.Tests.Hosting;

/// <summary>
/// A silo on a host of its own (a network namespace) holds every stream writer when its network goes: it can reach
/// neither the database nor the other two silos. The majority, with the database, declares it dead and takes the writers over
/// (their new epochs fence anything the cut-off silo still tries), clients keep sending through the surviving front
/// end, and after the link heals the cut-off silo learns it was declared dead and leaves; a new one joins and the
/// cluster is whole again. Nothing acknowledged is lost or duplicated.
/// </summary>
public sealed class NetworkPartitionTests(ITestOutputHelper output)
{
    [SkippableFact]
    public async Task A_silo_cut_off_from_the_database_and_its_peer_is_fenced_and_the_cluster_converges_after_healing()
    {
        using var net = NetworkNamespace.TryCreate(out var whyNot);
        Skip.If(net is null, $"no network namespace for the partition: {whyNot}");

        await using var pg = await PrivatePostgres.StartAsync(alsoListenOn: net!.HostAddress);
        var fromHost = pg.ConnectionString;
        var fromNamespace = fromHost.Replace("Host=127.0.0.1", $"Host={net.HostAddress}");
        await using var db = NpgsqlDataSource.Create(fromHost);
        string[] cutOffArgs = [$"--Homeserver:Cluster:AdvertisedAddress={net.NamespaceAddress}"];

        // The silo in the namespace starts first and takes every writer; the front end with its silo is on the host.
        var cutOff = HomeserverProcess.StartIn(net.Launcher, "Silo", fromNamespace, http: false, cutOffArgs);
        HomeserverProcess? replacement = null;
        try
        {
            await ProcessCluster.WaitForActiveSilosAsync(db, 1, cutOff);
            await ProcessCluster.WaitForWritersAsync(db);
            // The majority is on the host: a front end with its silo and a silo without HTTP. (With only two silos the
            // survivor would not evict its peer: Orleans' local health check counts the probes it no longer gets from
            // it against itself, so a lone survivor waits for the partition to heal.)
            using var frontEnd = HomeserverProcess.Start("Api", fromHost, http: true, $"--Homeserver:Cluster:AdvertisedAddress={net.HostAddress}");
            using var hostSilo = HomeserverProcess.Start("Silo", fromHost, http: false, $"--Homeserver:Cluster:AdvertisedAddress={net.HostAddress}");
            using var http = new HttpClient();
            await frontEnd.WaitReadyAsync(http);
            await ProcessCluster.WaitForActiveSilosAsync(db, 3, cutOff, frontEnd, hostSilo);

            var alice = await MatrixTestClient.RegisterAsync(TestSilo.OfProcess(frontEnd.Url));
            var rooms = new List<string>();
            for (var i = 0; i < 6; i++) rooms.Add(await alice.CreateRoomAsync());
            Assert.True(await ProcessCluster.WritersOnSiloAsync(db, cutOff.SiloPort) > 0);

            // Clients as real ones behave: a 503 is retried after a moment with the same transaction id.
            var load = new OutageTolerantLoad(alice.Http, rooms, "n");
            var acked = load.Acked;

            await Task.Delay(TimeSpan.FromSeconds(2));
            var beforeCut = acked.Count;
            net.Cut();
            output.WriteLine($"cut after {beforeCut} acknowledged");
            // The majority, with the database, declares the cut-off silo dead (its connections stay open but silent,
            // so Orleans waits out its liveness window first) and holds every writer from then on.
            var cutAt = DateTime.UtcNow;
            long declaredDead = 0;
            while (declaredDead == 0 && DateTime.UtcNow - cutAt < TimeSpan.FromSeconds(45))
            {
                await Task.Delay(250);
                declaredDead = await ProcessCluster.CountAsync(db, $"SELECT count(*) FROM OrleansMembershipTable WHERE Port = {cutOff.SiloPort} AND Status = 6");
            }
            output.WriteLine($"declared dead {(DateTime.UtcNow - cutAt).TotalSeconds:F1} s after the cut");
            await Task.Delay(TimeSpan.FromSeconds(3));
            var duringCut = acked.Count - beforeCut;
            Assert.True(declaredDead == 1, $"not declared dead: {await MembershipAsync(db)}\n{frontEnd.Output[^Math.Min(4000, frontEnd.Output.Length)..]}");
            Assert.Equal(0, await ProcessCluster.WritersOnSiloAsync(db, cutOff.SiloPort));
            Assert.True(duringCut > 0, "nothing was acknowledged while the silo was cut off");

            net.Heal();
            // Back on the network, the cut-off silo reads that it was declared dead and stops itself.
            Assert.True(cutOff.Process.WaitForExit(60_000), $"the cut-off silo did not stop after healing:\n{cutOff.Output[^Math.Min(3000, cutOff.Output.Length)..]}");
            output.WriteLine($"healed; the cut-off silo stopped itself (exit code {cutOff.Process.ExitCode})");
            replacement = HomeserverProcess.StartIn(net.Launcher, "Silo", fromNamespace, http: false, cutOffArgs);
            await ProcessCluster.WaitForSiloActiveAsync(db, replacement);
            await Task.Delay(TimeSpan.FromSeconds(3));
            await load.StopAsync();

            output.WriteLine($"acknowledged {acked.Count} ({duringCut} while cut off), answered 503 {load.Unavailable} times, unexpected {load.Unexpected.Count}");
            Assert.True(load.Unexpected.IsEmpty, string.Join("\n", load.Unexpected.Take(10)));
            await ProcessCluster.AssertEveryAcknowledgedMessageOnceAsync(alice, rooms, acked);
            Assert.Equal(0, await ProcessCluster.CountAsync(db,
                "SELECT count(*) FROM (SELECT stream, position FROM stream_log GROUP BY stream, position HAVING count(*) > 1) d"));
            Assert.Equal(3, await ProcessCluster.CountAsync(db, "SELECT count(*) FROM OrleansMembershipTable WHERE Status = 3"));
        }
        finally
        {
            cutOff.Dispose();
            replacement?.Dispose();
        }
    }

    private static async Task<string> MembershipAsync(NpgsqlDataSource db)
    {
        await using var cmd = db.CreateCommand("SELECT Address, Port, Status, SuspectTimes FROM OrleansMembershipTable");
        await using var reader = await cmd.ExecuteReaderAsync();
        var rows = new List<string>();
        while (await reader.ReadAsync()) rows.Add($"{reader.GetString(0)}:{reader.GetInt32(1)} status {reader.GetInt32(2)} suspects {(reader.IsDBNull(3) ? "" : reader.GetString(3))}");
        return string.Join("; ", rows);
    }
}

using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;
using Npgsql;

namespace Homeserver.Tests.Http.Operator;

/// <summary>
/// The operator surface through a front end without a silo (an Orleans client in a process of its own): it is ready
/// once connected to a gateway, and the cluster call lists the silo process as a plain silo and the front end, which
/// Orleans' membership does not know, from its heartbeat row; its reader is in the replication status.
/// </summary>
public sealed class FrontEndOperatorTests
{
    [Fact]
    public async Task A_front_end_without_a_silo_is_ready_and_listed_with_its_reader()
    {
        const string adminLocalpart = "fe-operator-admin";
        var database = await TestPostgres.CreateDatabaseAsync();
        await using var db = NpgsqlDataSource.Create(database);
        var adminArg = $"--Homeserver:AdminUsers:0=@{adminLocalpart}:localhost";
        using var silo = HomeserverProcess.Start("Silo", database, http: false, adminArg);
        await ProcessCluster.WaitForActiveSilosAsync(db, 1, silo);
        using var front = HomeserverProcess.Start("Api", database, http: true, "--Homeserver:Role=FrontEnd", adminArg);
        using var http = new HttpClient { BaseAddress = new Uri(front.Url) };
        await front.WaitReadyAsync(http);

        var ready = await http.GetJsonAsync("/health/ready");
        Assert.Equal(200, ready.StatusCode);
        Assert.True(ready["checks"]["cluster"]!["data"]!["gateways"]!.GetValue<int>() >= 1);

        var admin = await MatrixTestClient.RegisterAsync(TestSilo.OfProcess(front.Url), adminLocalpart);
        var cluster = (await admin.GetAsync("/_homeserver/admin/v1/cluster")).EnsureSuccess();
        var active = Assert.Single(cluster["silos"].AsArray(), s => s!["status"]!.GetValue<string>() == "Active");
        Assert.Equal("silo", active!["role"]!.GetValue<string>());
        Assert.EndsWith($":{silo.SiloPort}", active["endpoint"]!.GetValue<string>());
        var frontEnd = Assert.Single(cluster["front_ends"].AsArray());
        Assert.Equal("front_end", frontEnd!["role"]!.GetValue<string>());
        Assert.Null(frontEnd["silo"]);
        Assert.Equal("up", frontEnd["status"]!.GetValue<string>());
        Assert.Contains(front.Url, frontEnd["urls"]!.AsArray().Select(u => u!.GetValue<string>()));

        var replication = (await admin.GetAsync("/_homeserver/admin/v1/replication")).EnsureSuccess();
        var readers = replication["readers"].AsArray().Select(r => r!["name"]!.GetValue<string>()).ToList();
        Assert.Equal(2, readers.Count);
        Assert.Contains(frontEnd["name"]!.GetValue<string>(), readers);
        Assert.Contains(active["address"]!.GetValue<string>(), readers);
    }
}

using Homeserver.Hosting;
using Homeserver.Storage;

// A silo without HTTP: joins the cluster configured under Homeserver:Cluster and hosts grains and a stream reader.
try
{
    var builder = Host.CreateApplicationBuilder(args);
    builder.AddHomeserverSilo();
    await builder.Build().RunAsync();
    return 0;
}
catch (EmbeddedPostgres.NotAvailableException e)
{
    Console.Error.WriteLine($"homeserver silo: {e.Message}");
    return 2;
}

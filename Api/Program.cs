using Homeserver.Api;
using Homeserver.Storage;

try
{
    var app = HomeserverApp.Build(args);
    await app.RunAsync();
    return 0;
}
catch (Exception e) when (e is EmbeddedPostgres.NotAvailableException or Homeserver.Hosting.HomeserverConfigurationException)
{
    Console.Error.WriteLine($"homeserver: {e.Message}");
    return 2;
}

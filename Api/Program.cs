using Homeserver.Api;
using Homeserver.Storage;

try
{
    var app = HomeserverApp.Build(args);
    await app.RunAsync();
    return 0;
}
catch (EmbeddedPostgres.NotAvailableException e)
{
    Console.Error.WriteLine($"homeserver: {e.Message}");
    return 2;
}

using Homeserver.Api;
using Homeserver.Api.Commands;
using Homeserver.Storage;

// `register-user …` is a client of a running server (Synapse's register_new_matrix_user); anything else runs one.
if (args is [RegisterUserCommand.Name, .. var commandArgs])
    return await RegisterUserCommand.RunAsync(commandArgs, Console.In, Console.Out, Console.Error);

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

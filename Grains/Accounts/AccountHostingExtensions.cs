using Homeserver.Accounts;
using Homeserver.Streams;
using Microsoft.Extensions.DependencyInjection;

// In the hosting namespace so AddHomeserverGrains needs no extra using.
namespace Homeserver.Hosting;

public static class AccountHostingExtensions
{
    /// <summary>Accounts on one silo: the token authenticator (with its cache), UIA sessions, registration (the client's, and shared-secret for admins), the admin API's account administration, the persisters of
    /// credential revocations, and the client connections recorded per request (batch, flusher, reader).</summary>
    public static IServiceCollection AddHomeserverAccounts(this IServiceCollection services)
    {
        services.AddSingleton<AccountRepository>();
        services.AddSingleton<IAccessTokenAuthenticator, AccessTokenAuthenticator>();
        services.AddSingleton<UserInteractiveAuth>();
        services.AddSingleton<Registration>();
        services.AddSingleton<SharedSecretRegistration>();
        services.AddSingleton<UserAdministration>();
        services.AddSingleton<OpenIdTokens>();
        services.AddSingleton<IStreamRowPersister, DevicesDeletedPersister>();
        services.AddSingleton<IStreamRowPersister, TokensRevokedPersister>();
        services.AddSingleton<ClientIpBatch>();
        services.AddSingleton<DeviceConnections>();
        services.AddHostedService<ClientIpFlusher>();
        return services;
    }
}

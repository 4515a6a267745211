using Homeserver.Profile;
using Homeserver.Streams;
using Microsoft.Extensions.DependencyInjection;

namespace Homeserver.Hosting;

public static class ProfileHostingExtensions
{
    /// <summary>Profiles: the cached store, the profile row persister and the user directory.</summary>
    public static IServiceCollection AddHomeserverProfile(this IServiceCollection services)
    {
        services.AddSingleton<ProfileStore>();
        services.AddSingleton<UserDirectoryStore>();
        services.AddSingleton<IStreamRowPersister, ProfileSetPersister>();
        return services;
    }
}

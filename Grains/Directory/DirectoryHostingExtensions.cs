using Homeserver.RoomDirectory;
using Microsoft.Extensions.DependencyInjection;

namespace Homeserver.Hosting;

public static class DirectoryHostingExtensions
{
    /// <summary>Room aliases and the public room directory.</summary>
    public static IServiceCollection AddHomeserverDirectory(this IServiceCollection services)
    {
        services.AddSingleton<AliasStore>();
        services.AddSingleton<PublicRoomStore>();
        return services;
    }
}

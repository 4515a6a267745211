using Homeserver.Keys;
using Homeserver.Streams;
using Homeserver.Sync;
using Microsoft.Extensions.DependencyInjection;

// In the hosting namespace so AddHomeserverGrains needs no extra using.
namespace Homeserver.Hosting;

public static class KeysHostingExtensions
{
    /// <summary>Keys, profiles and the room directory (one call from <c>AddHomeserverGrains</c>).</summary>
    public static IServiceCollection AddHomeserverKeysProfileDirectory(this IServiceCollection services) =>
        services.AddHomeserverKeys().AddHomeserverProfile().AddHomeserverDirectory();

    /// <summary>End-to-end keys and device lists: the repository, the device_lists persister and the /sync section.</summary>
    public static IServiceCollection AddHomeserverKeys(this IServiceCollection services)
    {
        services.AddSingleton<KeyRepository>();
        services.AddSingleton<DeviceListStore>();
        services.AddSingleton<KeyCountCache>();
        services.AddSingleton<IStreamRowPersister, DeviceListChangePersister>();
        services.AddSingleton<ISyncSection, DeviceListSyncSection>();
        return services;
    }
}

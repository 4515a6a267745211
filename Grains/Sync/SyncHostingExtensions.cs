using Homeserver.Streams;
using Homeserver.Sync;
using Microsoft.Extensions.DependencyInjection;

namespace Homeserver.Hosting;

public static class SyncHostingExtensions
{
    /// <summary>/sync, filters and history reads of one silo.</summary>
    public static IServiceCollection AddHomeserverSync(this IServiceCollection services)
    {
        services.AddSingleton<ReplicationBarrier>();
        services.AddSingleton<FilterStore>();
        services.AddSingleton<LazyLoadedMembers>();
        services.AddSingleton<SyncHandler>();
        services.AddSingleton<LegacySyncHandler>();
        services.AddSingleton<RoomHistory>();
        return services;
    }
}

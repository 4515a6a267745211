using Homeserver.Streams;
using Homeserver.Sync;
using Microsoft.Extensions.DependencyInjection;

namespace Homeserver.Hosting;

public static class SyncHostingExtensions
{
    /// <summary>/sync, filters, room peeks and history reads of one silo.</summary>
    public static IServiceCollection AddHomeserverSync(this IServiceCollection services)
    {
        services.AddSingleton<ReplicationBarrier>();
        services.AddSingleton<FilterStore>();
        services.AddSingleton<LazyLoadedMembers>();
        services.AddSingleton<RoomSyncStates>();
        services.AddSingleton<RoomPeekStore>();
        services.AddSingleton<IStreamRowPersister, RoomPeekStartPersister>();
        services.AddSingleton<IStreamRowPersister, RoomPeekStopPersister>();
        services.AddSingleton<IStreamRowPersister, RoomPeeksEndedByJoinPersister>();
        foreach (var stream in new[] { StreamNames.AccountData, StreamNames.Events, StreamNames.Caches })
            services.AddSingleton<IStreamRowHandler>(sp => new RoomPeekCacheHandler(stream, sp.GetRequiredService<Caches.CacheRegistry>()));
        services.AddSingleton<SyncHandler>();
        services.AddSingleton<LegacySyncHandler>();
        services.AddSingleton<RoomHistory>();
        services.AddSingleton<Search.EventSearch>();
        return services;
    }
}

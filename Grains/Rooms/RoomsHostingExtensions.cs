using Homeserver.Streams;
using Microsoft.Extensions.DependencyInjection;

namespace Homeserver.Rooms;

public static class RoomsHostingExtensions
{
    /// <summary>Rooms: the persisters of the room rows, the cache handler, the read-side store.</summary>
    public static IServiceCollection AddHomeserverRooms(this IServiceCollection services)
    {
        services.AddSingleton<IStreamRowPersister, RoomEventPersister>();
        services.AddSingleton<IStreamRowPersister, RoomForgetPersister>();
        services.AddSingleton<IStreamRowPersister, RoomPurgePersister>();
        services.AddSingleton<RecentRoomEvents>();
        services.AddSingleton<IStreamRowHandler, RoomCacheHandler>();
        services.AddSingleton<RoomWriteStore>();
        services.AddSingleton<RoomEventStore>();
        services.AddSingleton<RoomRelations>();
        services.AddSingleton<BlockedRooms>();
        services.AddSingleton<RoomVisibility>();
        services.AddSingleton<ErasedSenders>();
        return services;
    }
}

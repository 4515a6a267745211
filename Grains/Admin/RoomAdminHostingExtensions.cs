using Microsoft.Extensions.DependencyInjection;

namespace Homeserver.Admin;

public static class RoomAdminHostingExtensions
{
    /// <summary>The rooms half of the admin API: the room list and details, event reports, room deletions.</summary>
    public static IServiceCollection AddHomeserverRoomAdmin(this IServiceCollection services)
    {
        services.AddSingleton<RoomAdminStore>();
        services.AddSingleton<EventReportStore>();
        services.AddSingleton<RoomDeletionStore>();
        return services;
    }
}

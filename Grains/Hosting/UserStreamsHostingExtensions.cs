using Homeserver.AccountData;
using Homeserver.Presence;
using Homeserver.PushRules;
using Homeserver.Receipts;
using Homeserver.Storage;
using Homeserver.Streams;
using Homeserver.Sync;
using Homeserver.ToDevice;
using Homeserver.Typing;
using Microsoft.Extensions.DependencyInjection;

namespace Homeserver.Hosting;

public static class UserStreamsHostingExtensions
{
    /// <summary>The per-user and ephemeral streams on one silo: push rules, account data, to-device, typing, receipts
    /// and presence — their persisters, read sides (with cache handlers) and /sync sections.</summary>
    public static IServiceCollection AddHomeserverUserStreams(this IServiceCollection services)
    {
        services.AddSingleton<PushRulesStore>();
        services.AddSingleton<NotificationList>();
        services.AddSingleton<IStreamRowPersister, PushRulesPersister>();
        services.AddSingleton<IStreamRowHandler, PushRulesCacheHandler>();
        services.AddSingleton<ISyncSection, PushRulesSyncSection>();
        services.AddSingleton<AccountDataStore>();
        services.AddSingleton<IgnoredUsers>();
        services.AddSingleton<IStreamRowHandler>(sp => sp.GetRequiredService<IgnoredUsers>());
        services.AddSingleton<IStreamRowPersister, AccountDataPersister>();
        services.AddSingleton<ISyncSection, AccountDataSyncSection>();
        services.AddSingleton<ToDeviceStore>();
        services.AddSingleton<IStreamRowPersister, ToDevicePersister>();
        services.AddTransactionIdPruner(StreamNames.ToDevice, "to_device_txns");
        services.AddSingleton<ISyncSection, ToDeviceSyncSection>();
        services.AddSingleton<ToDeviceQueueCache>();
        services.AddSingleton<RecentReceipts>();
        services.AddSingleton<IStreamRowHandler>(sp => sp.GetRequiredService<RecentReceipts>());
        services.AddSingleton<IStreamRowHandler>(sp => sp.GetRequiredService<ToDeviceQueueCache>());
        services.AddSingleton<TypingState>();
        services.AddSingleton<IStreamRowHandler>(sp => sp.GetRequiredService<TypingState>());
        services.AddSingleton<ISyncSection, TypingSyncSection>();
        services.AddOptions<PresenceOptions>().BindConfiguration(HomeserverOptions.Section);
        services.AddSingleton<PresenceStore>();
        services.AddSingleton<RecentPresence>();
        services.AddSingleton<IStreamRowHandler>(sp => sp.GetRequiredService<RecentPresence>());
        services.AddSingleton<IStreamRowPersister, PresencePersister>();
        services.AddSingleton<IStreamHousekeeper, PresenceWatchdog>();
        services.AddSingleton<ISyncSection, PresenceSyncSection>();
        services.AddSingleton<ReceiptStore>();
        services.AddSingleton<UnreadCounts>();
        services.AddSingleton<IStreamRowHandler>(sp => sp.GetRequiredService<UnreadCounts>());
        services.AddSingleton<IStreamRowPersister, ReceiptPersister>();
        // Last: it counts unread messages for every room the sections before it added.
        services.AddSingleton<ISyncSection, ReceiptsSyncSection>();
        return services;
    }
}

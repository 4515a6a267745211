using Homeserver.AccountData;
using Homeserver.PushRules;
using Homeserver.Streams;
using Homeserver.Sync;
using Microsoft.Extensions.DependencyInjection;

namespace Homeserver.Hosting;

public static class UserStreamsHostingExtensions
{
    /// <summary>The per-user and ephemeral streams on one silo: push rules, account data, to-device, typing, receipts
    /// and presence — their persisters, read sides (with cache handlers) and /sync sections.</summary>
    public static IServiceCollection AddHomeserverUserStreams(this IServiceCollection services)
    {
        services.AddSingleton<PushRulesStore>();
        services.AddSingleton<IStreamRowPersister, PushRulesPersister>();
        services.AddSingleton<IStreamRowHandler, PushRulesCacheHandler>();
        services.AddSingleton<ISyncSection, PushRulesSyncSection>();
        services.AddSingleton<AccountDataStore>();
        services.AddSingleton<IStreamRowPersister, AccountDataPersister>();
        services.AddSingleton<ISyncSection, AccountDataSyncSection>();
        return services;
    }
}

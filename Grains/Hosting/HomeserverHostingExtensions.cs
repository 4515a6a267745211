using Homeserver.Caches;
using Homeserver.Rooms;
using Homeserver.Storage;
using Homeserver.Streams;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Orleans.Configuration;

namespace Homeserver.Hosting;

/// <summary>Cluster endpoints of this silo (<c>Homeserver:Cluster</c> section); defaults suit a single silo.</summary>
public sealed class ClusterOptions
{
    public int SiloPort { get; set; } = 11111;
    public int GatewayPort { get; set; } = 30000;
    /// <summary>The silo port of the primary silo for localhost clustering; this silo's own port when absent.</summary>
    public int? PrimarySiloPort { get; set; }
    public string ClusterId { get; set; } = "homeserver";
    /// <summary>Declare a silo dead within seconds rather than about a minute (tests).</summary>
    public bool FastFailureDetection { get; set; }
}

public static class HomeserverHostingExtensions
{
    /// <summary>
    /// Everything a silo host needs, with or without HTTP: options, PostgreSQL (private or configured), migrations,
    /// the Orleans silo with localhost clustering, and the homeserver's grains and per-silo services.
    /// </summary>
    public static IHostApplicationBuilder AddHomeserverSilo(this IHostApplicationBuilder builder)
    {
        var options = builder.Configuration.GetSection(HomeserverOptions.Section).Get<HomeserverOptions>() ?? new HomeserverOptions();
        var cluster = builder.Configuration.GetSection($"{HomeserverOptions.Section}:Cluster").Get<ClusterOptions>() ?? new ClusterOptions();
        builder.Services.Configure<HomeserverOptions>(builder.Configuration.GetSection(HomeserverOptions.Section));

        string connectionString;
        EmbeddedPostgres? embedded = null;
        if (string.IsNullOrWhiteSpace(options.Postgres))
        {
            using var loggerFactory = LoggerFactory.Create(l => l.AddConsole());
            embedded = new EmbeddedPostgres(Path.Combine(options.DataDirectory, "postgres"),
                loggerFactory.CreateLogger<EmbeddedPostgres>(), binaries: options.PostgresBinaries);
            connectionString = embedded.ConnectionString();
            builder.Services.AddSingleton(embedded);
        }
        else
        {
            connectionString = options.Postgres;
        }

        builder.Services.AddSingleton(_ => StorageDataSource.Build(connectionString));
        // Hosted services start in registration order and stop in reverse: the database comes before the silo.
        builder.Services.AddHostedService(sp => new DatabaseStartup(
            sp.GetRequiredService<NpgsqlDataSource>(),
            sp.GetRequiredService<ILogger<DatabaseStartup>>(),
            sp.GetService<EmbeddedPostgres>()));

        builder.UseOrleans(silo =>
        {
            var primary = new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, cluster.PrimarySiloPort ?? cluster.SiloPort);
            silo.UseLocalhostClustering(cluster.SiloPort, cluster.GatewayPort, primary, serviceId: "homeserver", clusterId: cluster.ClusterId);
            if (cluster.FastFailureDetection)
            {
                silo.Configure<ClusterMembershipOptions>(o =>
                {
                    o.ProbeTimeout = TimeSpan.FromSeconds(1);
                    o.NumMissedProbesLimit = 2;
                    o.NumVotesForDeathDeclaration = 1;
                    o.TableRefreshTimeout = TimeSpan.FromSeconds(1);
                    o.DeathVoteExpirationTimeout = TimeSpan.FromSeconds(10);
                });
            }
            silo.AddHomeserverGrains(options);
        });
        return builder;
    }

    /// <summary>The homeserver's own per-silo services and grain configuration.</summary>
    public static ISiloBuilder AddHomeserverGrains(this ISiloBuilder silo, HomeserverOptions options)
    {
        silo.Services.AddHomeserverStreams();
        silo.Services.AddPlacementDirector<StreamWriterPlacement, StreamWriterPlacementDirector>();
        silo.Services.AddHomeserverAccounts();
        silo.Services.AddHomeserverRooms();
        silo.Services.AddHomeserverSync();
        silo.Services.AddHomeserverUserStreams();
        silo.Services.AddHomeserverKeysProfileDirectory();
        return silo;
    }

    /// <summary>The replication core of one silo: its reader, waiters, caches and test hooks.</summary>
    public static IServiceCollection AddHomeserverStreams(this IServiceCollection services)
    {
        services.AddSingleton<StreamTestHooks>();
        services.AddSingleton<CacheRegistry>();
        services.AddSingleton<CacheInvalidator>();
        services.AddSingleton<IStreamRowHandler, CacheStreamHandler>();
        services.AddSingleton<StreamNotifier>();
        services.AddSingleton<SiloStreamReader>();
        services.AddSingleton<ReplicationStatusReader>();
        // After the silo's own hosted service, so grains can be called when the reader starts.
        services.AddHostedService(sp => sp.GetRequiredService<SiloStreamReader>());
        return services;
    }
}

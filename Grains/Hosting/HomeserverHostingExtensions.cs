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

/// <summary>
/// How this process takes part in the cluster (<c>Homeserver:Cluster</c> section). Membership lives in the database
/// (<c>OrleansMembershipTable</c>), so every process that points at the same PostgreSQL and cluster id joins the same
/// cluster: no primary, no list of peers. Each advertises the address and ports the others reach it on.
/// </summary>
public sealed class ClusterOptions
{
    /// <summary>The address other silos and front ends reach this one on; it also listens there. Loopback suits one
    /// machine; across hosts set each host's own address.</summary>
    public string AdvertisedAddress { get; set; } = "127.0.0.1";
    public int SiloPort { get; set; } = 11111;
    /// <summary>Where front ends without a silo (Orleans clients) connect.</summary>
    public int GatewayPort { get; set; } = 30000;
    /// <summary>Processes with the same database and cluster id form one cluster.</summary>
    public string ClusterId { get; set; } = "homeserver";
    /// <summary>Declare a silo dead within seconds rather than about a minute (tests).</summary>
    public bool FastFailureDetection { get; set; }

    public System.Net.IPAddress Address() =>
        System.Net.IPAddress.TryParse(AdvertisedAddress, out var ip)
            ? ip
            : System.Net.Dns.GetHostAddresses(AdvertisedAddress).First(a => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork);
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
            silo.Configure<Orleans.Configuration.ClusterOptions>(o =>
            {
                o.ClusterId = cluster.ClusterId;
                o.ServiceId = "homeserver";
            });
            // The provider's SQL is in OrleansQuery (migration 0009), which DatabaseStartup applies before the silo starts.
            silo.UseAdoNetClustering(o =>
            {
                o.Invariant = "Npgsql";
                o.ConnectionString = connectionString;
            });
            silo.ConfigureEndpoints(cluster.Address(), cluster.SiloPort, cluster.GatewayPort, listenOnAnyHostAddress: false);
            // Failure detection by default: a silo that misses three one-second probes is suspected and voted dead,
            // a few seconds after a kill -9 (Orleans' defaults take about a minute). A GC pause or a busy machine
            // shorter than three seconds does not evict a live silo; one evicted wrongly restarts its silo process.
            // The membership table is still read at Orleans' default period: votes travel by gossip, not by polling.
            silo.Configure<ClusterMembershipOptions>(o =>
            {
                o.ProbeTimeout = TimeSpan.FromSeconds(1);
                o.NumMissedProbesLimit = 3;
            });
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
        silo.AddIncomingGrainCallFilter<StorageOutageCallFilter>();
        silo.AddOutgoingGrainCallFilter<SiloLossRetryFilter>();
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

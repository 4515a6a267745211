using Homeserver.Admin;
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
using Orleans.Runtime;

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

/// <summary>The configuration cannot start this process (said at start-up; the host exits with status 2).</summary>
public sealed class HomeserverConfigurationException(string message) : Exception(message);

public static class HomeserverHostingExtensions
{
    /// <summary>
    /// Everything a silo host needs, with or without HTTP: options, PostgreSQL (private or configured), migrations,
    /// the Orleans silo clustered through the database, and the homeserver's grains and per-silo services.
    /// </summary>
    public static IHostApplicationBuilder AddHomeserverSilo(this IHostApplicationBuilder builder)
    {
        var options = builder.ReadHomeserverOptions();
        var cluster = builder.ReadClusterOptions();
        var connectionString = builder.AddHomeserverDatabase(options);

        builder.UseOrleans(silo =>
        {
            silo.UseHomeserverClustering(cluster, connectionString);
            // Grain state that is a small document (the events shard map) in OrleansStorage (migration 0010).
            silo.AddAdoNetGrainStorage(EventShardMapGrain.Storage, o =>
            {
                o.Invariant = PostgresInvariant;
                o.ConnectionString = connectionString;
            });
            silo.AddHomeserverGrains(options);
            silo.AddHomeserverDashboard(options);
            // Grains nobody calls leave memory (a room's state among them) and come back from the database on demand.
            silo.Configure<GrainCollectionOptions>(o => o.CollectionAge = options.GrainCollectionAge);
            silo.Configure<GrainDirectoryOptions>(o => o.CacheSize = options.GrainDirectoryCacheSize);
        });
        return builder;
    }

    /// <summary>
    /// How a silo joins the cluster: membership in the database (<c>OrleansMembershipTable</c>), its advertised address
    /// and ports, and failure detection. Public so a benchmark can start a silo that is nothing but an Orleans member
    /// of the same configuration (the floor a homeserver silo's own work is measured against).
    /// </summary>
    public static ISiloBuilder UseHomeserverClustering(this ISiloBuilder silo, ClusterOptions cluster, string connectionString)
    {
        silo.Services.JoinClusterOf(cluster);
        silo.UseAdoNetClustering(o => (o.Invariant, o.ConnectionString) = MembershipTable(connectionString));
        silo.ConfigureEndpoints(cluster.Address(), cluster.SiloPort, cluster.GatewayPort, listenOnAnyHostAddress: false);
        // Failure detection by default: a silo that misses three one-second probes is suspected and voted dead,
        // a few seconds after a kill -9 (Orleans' defaults take about a minute). A GC pause or a busy machine
        // shorter than three seconds does not evict a live silo; one evicted wrongly restarts its silo process.
        // The membership table is still read at Orleans' default period: votes travel by gossip, not by polling.
        // A silo whose connection is still open but silent (a network partition rather than a dead process) is
        // voted out only after Orleans' liveness window of about 12 s without a message from it.
        silo.Configure<ClusterMembershipOptions>(o =>
        {
            o.ProbeTimeout = TimeSpan.FromSeconds(1);
            o.NumMissedProbesLimit = 3;
        });
        // Every silo sends its load statistics to every other silo (for Orleans' resource-optimised placement of new
        // activations); once a second by default, a wake-up of every silo per peer even when the cluster is idle.
        silo.Configure<DeploymentLoadPublisherOptions>(o => o.DeploymentLoadPublisherRefreshTime = LoadStatisticsPeriod);
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
        return silo;
    }

    /// <summary>
    /// A front end without a silo: an Orleans client that finds the silos' gateways in the membership table, plus
    /// everything the Client-Server API runs in the process itself (its own stream reader, caches and waiters, so
    /// long-polls are woken by push and a write acknowledged anywhere is read here). It needs the cluster's database
    /// (<c>Homeserver:Postgres</c>): it reads from it and has no private one of its own to offer.
    /// </summary>
    public static IHostApplicationBuilder AddHomeserverFrontEnd(this IHostApplicationBuilder builder)
    {
        var options = builder.ReadHomeserverOptions();
        var cluster = builder.ReadClusterOptions();
        if (string.IsNullOrWhiteSpace(options.Postgres))
            throw new HomeserverConfigurationException(
                "Homeserver:Role=FrontEnd serves the cluster of the database it is given: set Homeserver:Postgres to the silos' PostgreSQL.");
        var connectionString = builder.AddHomeserverDatabase(options);

        builder.UseOrleansClient(client =>
        {
            client.Services.JoinClusterOf(cluster);
            client.UseAdoNetClustering(o => (o.Invariant, o.ConnectionString) = MembershipTable(connectionString));
            // A gateway that dies is dropped at once (its connection breaks); one that joins is learned at the next
            // read of the membership table, which Orleans does every minute unless told otherwise.
            client.Configure<GatewayOptions>(o => o.GatewayListRefreshPeriod = GatewayListRefreshPeriod);
            client.AddOutgoingGrainCallFilter<SiloLossRetryFilter>();
            client.AddHomeserverDashboard(options);
            // A gateway that dies after passing a request on takes the answer with it; only the response timeout
            // tells, and the retry filter then asks again. Orleans' 30 s would outlast the retry window.
            client.Configure<ClientMessagingOptions>(o => o.ResponseTimeout = FrontEndResponseTimeout);
            // With no silo up yet (a front end started first, or a whole-cluster restart) keep trying rather than exit.
            client.UseConnectionRetryFilter(async (e, ct) =>
            {
                await Task.Delay(TimeSpan.FromSeconds(1), ct);
                return !ct.IsCancellationRequested;
            });
        });
        // After the client's hosted service, so the reader starts once the client is connected.
        builder.Services.AddSingleton(ReaderHost.OfClient(
            $"front end {System.Net.Dns.GetHostName()}/{Environment.ProcessId}/{Guid.NewGuid().ToString("N")[..8]}"));
        builder.Services.AddHomeserverServices();
        return builder;
    }

    /// <summary>How long a front end without a silo waits for a grain call's answer (longer than a failover takes: a
    /// room whose writer died answers within a few seconds, once membership has declared the silo dead).</summary>
    public static readonly TimeSpan FrontEndResponseTimeout = TimeSpan.FromSeconds(8);

    /// <summary>How often a silo publishes its load statistics to the others (Orleans: every second).</summary>
    public static readonly TimeSpan LoadStatisticsPeriod = TimeSpan.FromSeconds(10);

    /// <summary>How often a front end without a silo rereads the gateways from the membership table.</summary>
    public static readonly TimeSpan GatewayListRefreshPeriod = TimeSpan.FromSeconds(5);

    private const string ServiceId = "homeserver";

    /// <summary>The ADO.NET provider name Orleans' database providers load Npgsql by.</summary>
    private const string PostgresInvariant = "Npgsql";

    /// <summary>What every silo and front end of one cluster shares: its cluster id and the service id. With
    /// <see cref="MembershipTable"/>, this is all a process needs to find the others. (And how each resolves grain
    /// interface names: once, <see cref="GrainInterfaceTypeCache"/>.)</summary>
    private static void JoinClusterOf(this IServiceCollection services, ClusterOptions cluster)
    {
        services.Configure<Orleans.Configuration.ClusterOptions>(o =>
        {
            o.ClusterId = cluster.ClusterId;
            o.ServiceId = ServiceId;
        });
        GrainInterfaceTypeCache.AddTo(services);
    }

    /// <summary>
    /// Where membership lives, the same for silos (which write their rows) and front ends (which read the gateways):
    /// <c>OrleansMembershipTable</c> in the cluster's PostgreSQL. The provider's SQL is in OrleansQuery (migration 0009),
    /// which DatabaseStartup applies before Orleans starts. Returned as a pair because the provider's silo and client
    /// options are two types with no common base.
    /// </summary>
    private static (string Invariant, string ConnectionString) MembershipTable(string connectionString) =>
        (PostgresInvariant, connectionString);

    private static HomeserverOptions ReadHomeserverOptions(this IHostApplicationBuilder builder)
    {
        builder.Services.Configure<HomeserverOptions>(builder.Configuration.GetSection(Homeserver.HomeserverOptions.Section));
        return builder.Configuration.GetSection(Homeserver.HomeserverOptions.Section).Get<HomeserverOptions>() ?? new HomeserverOptions();
    }

    private static ClusterOptions ReadClusterOptions(this IHostApplicationBuilder builder) =>
        builder.Configuration.GetSection($"{Homeserver.HomeserverOptions.Section}:Cluster").Get<ClusterOptions>() ?? new ClusterOptions();

    /// <summary>PostgreSQL (the configured one, or the private one under the data directory) and its migrations;
    /// returns the connection string.</summary>
    private static string AddHomeserverDatabase(this IHostApplicationBuilder builder, HomeserverOptions options)
    {
        string connectionString;
        if (string.IsNullOrWhiteSpace(options.Postgres))
        {
            using var loggerFactory = LoggerFactory.Create(l => l.AddConsole());
            var embedded = new EmbeddedPostgres(EmbeddedPostgres.RootIn(options.DataDirectory),
                loggerFactory.CreateLogger<EmbeddedPostgres>(), binaries: options.PostgresBinaries);
            connectionString = embedded.ConnectionString();
            builder.Services.AddSingleton(embedded);
        }
        else
        {
            connectionString = options.Postgres;
        }

        builder.Services.AddSingleton(_ => StorageDataSource.Build(connectionString));
        // Hosted services start in registration order and stop in reverse: the database comes before Orleans.
        builder.Services.AddHostedService(sp => new DatabaseStartup(
            sp.GetRequiredService<NpgsqlDataSource>(),
            sp.GetRequiredService<ILogger<DatabaseStartup>>(),
            sp.GetService<EmbeddedPostgres>()));
        return connectionString;
    }

    /// <summary>The homeserver's own per-silo services and grain configuration.</summary>
    public static ISiloBuilder AddHomeserverGrains(this ISiloBuilder silo, HomeserverOptions options)
    {
        silo.AddIncomingGrainCallFilter<StorageOutageCallFilter>();
        silo.AddOutgoingGrainCallFilter<SiloLossRetryFilter>();
        silo.Services.AddPlacementDirector<StreamWriterPlacement, StreamWriterPlacementDirector>();
        silo.Services.AddPlacementDirector<RoomPlacement, RoomPlacementDirector>();
        silo.Services.AddSingleton(sp => ReaderHost.OfSilo(sp.GetRequiredService<ILocalSiloDetails>(), sp.GetRequiredService<IClusterMembershipService>()));
        silo.Services.AddHomeserverServices();
        return silo;
    }

    /// <summary>What every process that serves or hosts the homeserver runs in itself, silo or not: the replication
    /// core and each area's stores, caches, row handlers and persisters (grains use the persisters; a front end
    /// without a silo simply never calls them).</summary>
    public static IServiceCollection AddHomeserverServices(this IServiceCollection services)
    {
        services.AddHomeserverStreams();
        services.AddHomeserverAccounts();
        services.AddHomeserverRooms();
        services.AddHomeserverSync();
        services.AddHomeserverUserStreams();
        services.AddHomeserverKeysProfileDirectory();
        services.AddHomeserverPushers();
        services.AddHomeserverMedia();
        services.AddHomeserverRoomAdmin();
        return services;
    }

    /// <summary>The replication core of one process: its reader, waiters, caches and test hooks.</summary>
    public static IServiceCollection AddHomeserverStreams(this IServiceCollection services)
    {
        services.AddSingleton<StreamTestHooks>();
        services.AddSingleton(sp => new CacheRegistry(sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<HomeserverOptions>>().Value.Caches.Sizes));
        services.AddSingleton<CacheInvalidator>();
        services.AddSingleton<IStreamRowHandler, CacheStreamHandler>();
        services.AddSingleton<StreamNotifier>();
        services.AddSingleton<EventShards>();
        services.AddSingleton<SiloStreamReader>();
        services.AddSingleton<ReplicationStatusReader>();
        services.AddSingleton<StreamWriterPins>();
        services.AddSingleton<Homeserver.Observability.HomeserverMetrics>();
        // After the silo's (or client's) own hosted service, so grains can be called when the reader starts.
        services.AddHostedService(sp => sp.GetRequiredService<SiloStreamReader>());
        return services;
    }
}

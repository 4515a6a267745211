using Homeserver.Api;
using Homeserver.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Homeserver.Tests.Infrastructure;

/// <summary>
/// N homeserver silos in this process, each a real front end (Kestrel on a loopback port) co-hosting an Orleans silo,
/// clustered over loopback, over a throwaway PostgreSQL database. Give a test each silo's services, grain factory and
/// base URL. Membership lives in the test's database, so any silo may be stopped or killed.
/// </summary>
/// <example>
/// <code>
/// await using var cluster = await HomeserverTestCluster.StartAsync(silos: 2);
/// var writer = cluster.Silos[0].Grains.GetGrain&lt;IStreamWriterGrain&gt;("typing/0");
/// var response = await cluster.Silos[1].Http.GetAsync("/health/ready");
/// </code>
/// </example>
public sealed class HomeserverTestCluster : IAsyncDisposable
{
    private readonly List<TestSilo> _silos = [];
    private readonly Dictionary<string, string?> _settings;
    private readonly Action<WebApplicationBuilder>? _configure;

    public IReadOnlyList<TestSilo> Silos => _silos;
    public string ConnectionString { get; }
    public NpgsqlDataSource Database { get; }

    private HomeserverTestCluster(string connectionString, Dictionary<string, string?> settings, Action<WebApplicationBuilder>? configure)
    {
        _configure = configure;
        ConnectionString = connectionString;
        Database = NpgsqlDataSource.Create(connectionString);
        _settings = settings;
    }

    /// <param name="silos">How many silos (each with a front end) to start.</param>
    /// <param name="settings">Extra configuration, e.g. <c>["Homeserver:EventWriters"] = "4"</c>.</param>
    /// <param name="configure">Applied to every silo's builder after the settings (e.g. a logging provider).</param>
    public static async Task<HomeserverTestCluster> StartAsync(int silos = 2, IDictionary<string, string?>? settings = null,
        Action<WebApplicationBuilder>? configure = null)
    {
        var connectionString = settings is not null && settings.TryGetValue("Homeserver:Postgres", out var configured) && configured is not null
            ? configured
            : await TestPostgres.CreateDatabaseAsync();
        var merged = new Dictionary<string, string?>
        {
            ["Homeserver:Postgres"] = connectionString,
            ["Homeserver:ServerName"] = "localhost",
            ["Homeserver:PasswordHashCost"] = "4",
            // Tests register many users and send fast from one address; the rate-limit tests turn limits on.
            ["Homeserver:RateLimits:Enabled"] = "false",
            ["Homeserver:ReaderBackstopPeriod"] = "00:00:00.500",
            ["Homeserver:Cluster:FastFailureDetection"] = "true",
            // Writers stay where they were placed, so a test's cluster does not move them under it (the rebalancing
            // tests turn it on).
            ["Homeserver:WriterRebalanceDelay"] = "00:00:00",
            ["Logging:LogLevel:Default"] = "Warning",
            ["Logging:LogLevel:Orleans"] = "Error",
            ["Logging:LogLevel:Microsoft"] = "Error",
        };
        if (settings is not null) foreach (var (k, v) in settings) merged[k] = v;

        var cluster = new HomeserverTestCluster(connectionString, merged, configure);
        try
        {
            for (var i = 0; i < silos; i++) await cluster.StartSiloAsync();
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
        return cluster;
    }

    /// <summary>Starts one more silo (with its front end) and waits until it is ready.</summary>
    public async Task<TestSilo> StartSiloAsync()
    {
        var siloPort = LoopbackPorts.Free();
        var httpPort = LoopbackPorts.Free();
        var settings = new Dictionary<string, string?>(_settings)
        {
            ["urls"] = $"http://127.0.0.1:{httpPort}",
            ["Homeserver:Cluster:SiloPort"] = siloPort.ToString(),
            ["Homeserver:Cluster:GatewayPort"] = LoopbackPorts.Free().ToString(),
        };
        var app = HomeserverApp.Build([], builder =>
        {
            builder.Configuration.AddInMemoryCollection(settings);
            _configure?.Invoke(builder);
        });
        await app.StartAsync();
        var silo = new TestSilo(_silos.Count, app, $"http://127.0.0.1:{httpPort}");
        _silos.Add(silo);
        return silo;
    }

    /// <summary>Graceful shutdown of one silo: its grains deactivate and hand over.</summary>
    public async Task StopSiloAsync(int index)
    {
        var silo = _silos[index];
        if (!silo.Running) return;
        silo.Running = false;
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30))) await silo.App.StopAsync(cts.Token);
        await silo.App.DisposeAsync();
    }

    /// <summary>Ungraceful stop (a cancelled shutdown): the silo vanishes without handing its grains over.</summary>
    public async Task KillSiloAsync(int index)
    {
        var silo = _silos[index];
        if (!silo.Running) return;
        silo.Running = false;
        try { await silo.App.StopAsync(new CancellationToken(canceled: true)); }
        catch (OperationCanceledException) { }
        try { await silo.App.DisposeAsync(); }
        catch (Exception) { /* a killed silo may fail to dispose cleanly; that is the point */ }
    }

    public async ValueTask DisposeAsync()
    {
        for (var i = _silos.Count - 1; i >= 0; i--)
        {
            try { await StopSiloAsync(i); }
            catch (Exception) { await KillSiloAsync(i); }
        }
        await Database.DisposeAsync();
    }

}

/// <summary>One silo of a <see cref="HomeserverTestCluster"/> and its front end.</summary>
public sealed class TestSilo(int index, WebApplication app, string baseUrl)
{
    /// <summary>A front end running in another process (see <c>HomeserverProcess</c>): only its URL and
    /// <see cref="Http"/> are there, for <see cref="MatrixTestClient"/>; it has no services in this process.</summary>
    public static TestSilo OfProcess(string baseUrl) => new(-1, null!, baseUrl);

    public int Index { get; } = index;
    public WebApplication App { get; } = app;
    public string BaseUrl { get; } = baseUrl;
    public bool Running { get; internal set; } = true;
    public IServiceProvider Services => App.Services;
    public IGrainFactory Grains => App.Services.GetRequiredService<IGrainFactory>();
    public T Get<T>() where T : notnull => App.Services.GetRequiredService<T>();

    private HttpClient? _http;
    public HttpClient Http => _http ??= new HttpClient { BaseAddress = new Uri(BaseUrl), Timeout = TimeSpan.FromSeconds(100) };
}

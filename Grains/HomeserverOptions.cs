namespace Homeserver;

/// <summary>The <c>Homeserver</c> configuration section.</summary>
public sealed class HomeserverOptions
{
    public const string Section = "Homeserver";

    /// <summary>The server name: the part after the colon in user ids and room aliases.</summary>
    public string ServerName { get; set; } = "localhost";

    /// <summary>
    /// What an <c>Api</c> process is: <see cref="ProcessRole.Combined"/> serves the Client-Server API and hosts a silo
    /// (the embedded default); <see cref="ProcessRole.FrontEnd"/> serves it as an Orleans client of the silos it finds
    /// through the database, hosting no grains. A <c>Silo</c> process is always a silo.
    /// </summary>
    public ProcessRole Role { get; set; } = ProcessRole.Combined;

    /// <summary>Where the private PostgreSQL cluster (and other local state) lives.</summary>
    public string DataDirectory { get; set; } = "./data";

    /// <summary>A PostgreSQL connection string. When set, no private cluster is started.</summary>
    public string? Postgres { get; set; }

    /// <summary>The folder with initdb and pg_ctl for the private cluster; searched on PATH and under
    /// /usr/lib/postgresql/*/bin when unset.</summary>
    public string? PostgresBinaries { get; set; }

    /// <summary>Number of writer shards of the <c>events</c> stream a new database starts with (a room maps to one by
    /// a stable hash). From then on the shard map in the database decides; an admin changes it live
    /// (<c>PUT /_homeserver/admin/v1/event_writers</c>).</summary>
    public int EventWriters { get; set; } = 2;

    /// <summary>
    /// User ids (<c>@name:server</c>) allowed to call the homeserver's admin API (<c>/_homeserver/admin/</c>). Kept in
    /// configuration, read by every front end, so an operator can name the first admin without a database write.
    /// </summary>
    public string[] AdminUsers { get; set; } = [];

    /// <summary>
    /// The secret of shared-secret registration (Synapse's <c>registration_shared_secret</c>): who knows it may create
    /// users and admins through <c>POST /_synapse/admin/v1/register</c>, as <c>register_new_matrix_user</c> and the
    /// <c>register-user</c> command do, whether or not registration is open. Unset (the default): that endpoint is off.
    /// </summary>
    public string? RegistrationSharedSecret { get; set; }

    /// <summary>
    /// Transactions each <c>events</c> writer keeps in flight (other streams' writers keep 8). Event appends carry
    /// several statements per row and their rows are notified with their payloads, so a busy server is CPU-bound and
    /// fewer, larger group commits beat parallel small ones: with 1 the send benchmark sent 5,161 messages/s against
    /// 4,350 with 2 and 2,753 with 8 (docs/benchmarks.md, issue 3). A quiet room waits for at most one commit.
    /// </summary>
    public int EventWriterMaxInFlight { get; set; } = 1;

    /// <summary>
    /// Positions a stream writer takes from its sequence beyond what a group commit needs, for the next commits, so
    /// that most commits are one round trip (the batch) instead of two (<c>nextval</c>, then the batch): what a lone
    /// sender waits for. Spares are given back when the writer goes idle, so a sharded stream's minimum is not held
    /// back for longer than an idle tick. 0 allocates per commit.
    /// </summary>
    public int StreamWriterSparePositions { get; set; } = 64;

    /// <summary>
    /// How long a silo must have been active before running stream writers move to it (writers spread over the silos
    /// by rendezvous hashing of their keys; a joining or leaving silo moves only the writers whose home it is).
    /// Zero turns moving off: writers then stay where they were first placed until their silo goes.
    /// </summary>
    public TimeSpan WriterRebalanceDelay { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often each silo reader asks every writer for its position, to recover lost notifications.</summary>
    public TimeSpan ReaderBackstopPeriod { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long rows of the <c>caches</c> stream are kept before they are pruned.</summary>
    public TimeSpan CacheStreamRetention { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// How long the other streams' log rows are kept (typing: ten minutes). Their data lives in its own tables
    /// (events, receipts, account data...); the log serves readers filling gaps, which are seconds behind, so a day
    /// is ample: a silo further behind than that drops its caches and starts from the writers' positions.
    /// </summary>
    public TimeSpan StreamLogRetention { get; set; } = TimeSpan.FromDays(1);

    /// <summary>How long a client's transaction id (<c>PUT .../send/{type}/{txnId}</c>, <c>sendToDevice</c>) is
    /// honoured: a retry within it returns the first result. Synapse keeps event transaction ids for 24 hours.</summary>
    public TimeSpan TransactionIdLifetime { get; set; } = TimeSpan.FromHours(24);

    /// <summary>
    /// Largest request body accepted where an endpoint sets no limit of its own (events: 65,536 bytes, the spec's
    /// event size); larger bodies are answered 413 <c>M_TOO_LARGE</c> before any handler runs.
    /// </summary>
    public int MaxRequestBodyBytes { get; set; } = 1 << 20;

    /// <summary>How often each process writes the client connections it recorded (ip, user agent, last seen per
    /// device) to the database in one batch; Synapse writes its <c>user_ips</c> every 5 seconds. Other processes see a
    /// connection within this period, the process that served it at once.</summary>
    public TimeSpan ClientIpFlushPeriod { get; set; } = TimeSpan.FromSeconds(5);

    public bool EnableRegistration { get; set; } = true;
    public bool EnableGuestAccess { get; set; }

    /// <summary>BCrypt work factor for password hashes (tests lower it).</summary>
    public int PasswordHashCost { get; set; } = 12;

    /// <summary>Delivery to push gateways (<c>Homeserver:Push</c>).</summary>
    public PushOptions Push { get; set; } = new();

    /// <summary>The media repository (<c>Homeserver:Media</c>).</summary>
    public MediaOptions Media { get; set; } = new();

    /// <summary>Rate limits of the Client-Server API (<c>Homeserver:RateLimits</c>), Synapse's <c>rc_*</c>.</summary>
    public RateLimitOptions RateLimits { get; set; } = new();

    /// <summary>Server-side search (<c>Homeserver:Search</c>).</summary>
    public SearchOptions Search { get; set; } = new();

    /// <summary>How room grains write (<c>Homeserver:Rooms</c>).</summary>
    public RoomOptions Rooms { get; set; } = new();

    /// <summary>The Orleans dashboard for admins (<c>Homeserver:Dashboard</c>).</summary>
    public OrleansDashboardOptions Dashboard { get; set; } = new();

    /// <summary>The Prometheus scraping endpoint <c>/metrics</c> (<c>Homeserver:Metrics</c>).</summary>
    public MetricsOptions Metrics { get; set; } = new();

    /// <summary>How logs are written (<c>Homeserver:Logging</c>).</summary>
    public LoggingOptions Logging { get; set; } = new();

    /// <summary>Bounds of the per-silo caches (<c>Homeserver:Caches</c>).</summary>
    public CacheOptions Caches { get; set; } = new();

    /// <summary>How long a grain (a room, a user, a device...) stays in memory after its last call: Orleans' collection
    /// age. A room nobody writes to leaves memory with its state after this and is loaded again on its next call.</summary>
    public TimeSpan GrainCollectionAge { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>How many grains' silo addresses each silo's grain directory cache holds (Orleans'
    /// <c>GrainDirectoryOptions.CacheSize</c>). Orleans' default, 1,000,000, sizes the cache's tables for a million
    /// entries up front (about 9 MB each, several a silo) whatever the cluster holds; a miss costs one directory lookup.</summary>
    public int GrainDirectoryCacheSize { get; set; } = 100_000;
}

/// <summary>See <see cref="HomeserverOptions.Caches"/>.</summary>
public sealed class CacheOptions
{
    /// <summary>
    /// The bound of each per-silo cache by its name in the <c>homeserver_cache_entries</c> metric
    /// (<c>--Homeserver:Caches:Sizes:rooms.events=20000</c>); a cache not named keeps its default. Entries, except
    /// <c>rooms.current_state</c> (state events, summed over the rooms held) and <c>rooms.recent_events</c> /
    /// <c>receipts.recent</c> (rooms, each with its last rows; <c>rooms.recent_events.bytes</c> bounds those rows' bytes).
    /// </summary>
    public Dictionary<string, int> Sizes { get; set; } = new(StringComparer.Ordinal);
}

/// <summary>See <see cref="HomeserverOptions.Search"/>.</summary>
public sealed class SearchOptions
{
    /// <summary>Index new messages, room names and topics for <c>POST /search</c> as they are persisted (off: events
    /// sent meanwhile are never found, as with Synapse's search disabled).</summary>
    public bool IndexEvents { get; set; } = true;
}

/// <summary>See <see cref="HomeserverOptions.Rooms"/>.</summary>
public sealed class RoomOptions
{
    /// <summary>State events and membership changes queued in one room while its previous write commits go out in one
    /// append, each checked against the state the one before it leaves (off: one append per state write, as before
    /// issue 13; kept for the <c>joins</c> benchmark's baseline).</summary>
    public bool BatchStateWrites { get; set; } = true;
}

/// <summary>See <see cref="HomeserverOptions.Media"/>.</summary>
public sealed class MediaOptions
{
    /// <summary>Largest upload accepted (413 <c>M_TOO_LARGE</c> beyond); Synapse's default <c>max_upload_size</c>.</summary>
    public long MaxUploadBytes { get; set; } = 50L * 1024 * 1024;

    /// <summary>Images with more pixels than this are not thumbnailed (their header is read, never their pixels), as
    /// Synapse's <c>max_image_pixels</c>: a small file can declare a huge image.</summary>
    public long MaxImagePixels { get; set; } = 32_000_000;

    /// <summary>Ids reserved by <c>POST /media/v1/create</c> a user may have waiting for content at once.</summary>
    public int MaxPendingUploads { get; set; } = 5;

    /// <summary>How long a reserved id waits for its content before it is given up.</summary>
    public TimeSpan PendingUploadLifetime { get; set; } = TimeSpan.FromHours(24);

    /// <summary>URL previews (<c>GET .../preview_url</c>): the server fetches pages on users' behalf.</summary>
    public bool EnableUrlPreviews { get; set; } = true;

    /// <summary>
    /// Networks (CIDR) a previewed URL may resolve into although they are private, loopback or link-local. By default
    /// only public addresses are fetched (Synapse's <c>url_preview_ip_range_blacklist</c>): a user cannot make the
    /// server read the operator's own network.
    /// </summary>
    public string[] PreviewAllowedNetworks { get; set; } = [];

    /// <summary>Accept any TLS certificate from previewed sites. For test rigs only (SyTest's page server has a
    /// self-signed certificate); logged loudly.</summary>
    public bool InsecureSkipCertificateValidationForTesting { get; set; }

    /// <summary>Most bytes of a page (or image) read for a preview; Synapse's <c>max_spider_size</c>.</summary>
    public int MaxPreviewBytes { get; set; } = 10 * 1024 * 1024;

    /// <summary>How long fetching a page for a preview may take.</summary>
    public TimeSpan PreviewTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a URL's preview is reused before the page is fetched again (Synapse caches an hour).</summary>
    public TimeSpan PreviewCacheLifetime { get; set; } = TimeSpan.FromHours(1);
}

/// <summary>
/// See <see cref="HomeserverOptions.RateLimits"/>. Each limit is Synapse's leaky bucket: <see cref="RateLimit.Burst"/>
/// actions at once, then <see cref="RateLimit.PerSecond"/> on average; the defaults are Synapse's
/// (synapse/config/ratelimiting.py). An exceeded limit answers 429 <c>M_LIMIT_EXCEEDED</c> with <c>retry_after_ms</c>.
/// </summary>
public sealed class RateLimitOptions
{
    /// <summary>Off turns every limit off (test rigs and benchmarks create users and send as fast as they can).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Events a user sends (<c>rc_message</c>): messages, state events and redactions, per user.</summary>
    public RateLimit Message { get; set; } = new(0.2, 10);

    /// <summary>Accounts registered from one client address (<c>rc_registration</c>); only successful registrations count.</summary>
    public RateLimit Registration { get; set; } = new(0.17, 3);

    /// <summary>Login requests from one client address (<c>rc_login.address</c>), whatever their outcome.</summary>
    public RateLimit LoginAddress { get; set; } = new(0.003, 5);

    /// <summary>Successful logins to one account (<c>rc_login.account</c>).</summary>
    public RateLimit LoginAccount { get; set; } = new(0.003, 5);

    /// <summary>Failed logins to one account (<c>rc_login.failed_attempts</c>): while exceeded, even the right password
    /// is refused, so guessing one account's password from many addresses is as slow as from one.</summary>
    public RateLimit LoginFailedAttempts { get; set; } = new(0.17, 3);

    /// <summary>Rooms a user joins (<c>rc_joins.local</c>).</summary>
    public RateLimit Joins { get; set; } = new(0.1, 10);

    /// <summary>Invites into one room (<c>rc_invites.per_room</c>).</summary>
    public RateLimit InvitesPerRoom { get; set; } = new(0.3, 10);

    /// <summary>Invites one user receives (<c>rc_invites.per_user</c>).</summary>
    public RateLimit InvitesPerUser { get; set; } = new(0.003, 5);

    /// <summary>Invites one user sends (<c>rc_invites.per_issuer</c>).</summary>
    public RateLimit InvitesPerIssuer { get; set; } = new(0.3, 10);

    /// <summary>Media ids a user makes (<c>rc_media_create</c>): <c>POST /media/v1/create</c>, as in Synapse, and an upload
    /// without a reserved id (<c>POST /upload</c>), which makes one too; an upload to a reserved id was counted by its
    /// <c>/create</c>.</summary>
    public RateLimit MediaCreate { get; set; } = new(10, 50);
}

/// <summary>One limit: up to <see cref="Burst"/> actions at once, refilled at <see cref="PerSecond"/> (Synapse's
/// <c>per_second</c> and <c>burst_count</c>). A zero in either turns this limit off.</summary>
public sealed class RateLimit
{
    public RateLimit() { }
    public RateLimit(double perSecond, int burst) => (PerSecond, Burst) = (perSecond, burst);

    public double PerSecond { get; set; }
    public int Burst { get; set; }
}

/// <summary>See <see cref="HomeserverOptions.Dashboard"/>.</summary>
public sealed class OrleansDashboardOptions
{
    /// <summary>
    /// Serve the Orleans dashboard to server admins under <c>/_homeserver/dashboard/</c>. Off by default: it adds a
    /// grain call filter on every silo (which profiles calls while the page is being viewed) and costs each process
    /// a few seconds at start-up. Set it on every process of the cluster (silos collect the figures, the front end
    /// that serves the page asks them).
    /// </summary>
    public bool Enabled { get; set; }
}

/// <summary>See <see cref="HomeserverOptions.Metrics"/>.</summary>
public sealed class MetricsOptions
{
    /// <summary>Collect metrics and serve them at <c>/metrics</c> in Prometheus' text format. Off: nothing is collected
    /// (the instruments stay unobserved, which costs a branch each) and <c>/metrics</c> answers 404.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Where <c>/metrics</c> is served: a port of its own, on <c>Homeserver:Cluster:AdvertisedAddress</c>. Unset:
    /// an <c>Api</c> process serves it on its API port, a <c>Silo</c> process (which has no API port) on
    /// <see cref="DefaultSiloPort"/>.</summary>
    public int? Port { get; set; }

    /// <summary>Meters not to export, by name (<c>Homeserver</c>, which holds <c>http.server.request.duration</c> too, <c>Microsoft.Orleans</c>,
    /// <c>Microsoft.AspNetCore.Server.Kestrel</c>, <c>Microsoft.AspNetCore.Routing</c>, <c>Microsoft.AspNetCore.Diagnostics</c>,
    /// <c>Microsoft.AspNetCore.RateLimiting</c>, <c>Npgsql</c>, <c>runtime</c> for the .NET runtime's): for an
    /// operator who collects some elsewhere or wants a series' recording cost off a busy process.</summary>
    public List<string> ExcludeMeters { get; set; } = [];

    /// <summary>The most series one instrument keeps (OpenTelemetry's cardinality limit, whose default of 2,000 it
    /// allocates for every instrument up front); further series are counted together in one series labelled
    /// <c>otel.metric.overflow</c>. The widest instrument here, <c>http.server.request.duration</c>, has a series per
    /// route, method and status answered.</summary>
    public int CardinalityLimit { get; set; } = 500;

    /// <summary>The port a silo without HTTP serves <c>/metrics</c> on when <see cref="Port"/> is unset (the Prometheus
    /// exporter's customary port).</summary>
    public const int DefaultSiloPort = 9464;
}

/// <summary>See <see cref="HomeserverOptions.Logging"/>.</summary>
public sealed class LoggingOptions
{
    /// <summary><c>text</c> (the console's usual lines) or <c>json</c> (one JSON object a line, for log collectors).</summary>
    public string Format { get; set; } = "text";
}

/// <summary>See <see cref="HomeserverOptions.Push"/>.</summary>
public sealed class PushOptions
{
    /// <summary>
    /// Networks (CIDR, e.g. <c>127.0.0.0/8</c>) a push gateway may be in although they are private, loopback or
    /// link-local. Pusher URLs are chosen by users, so by default the server connects only to public addresses (as
    /// Synapse's <c>ip_range_blacklist</c> does): a user cannot make it call into the operator's own network.
    /// </summary>
    public string[] AllowedNetworks { get; set; } = [];

    /// <summary>
    /// Accept any TLS certificate from push gateways. For test rigs only (SyTest's gateway has a self-signed
    /// certificate; Synapse's equivalent is <c>use_insecure_ssl_client_just_for_testing_do_not_use</c>); logged loudly.
    /// </summary>
    public bool InsecureSkipCertificateValidationForTesting { get; set; }

    /// <summary>How long one request to a gateway may take before it counts as failed and is retried later.</summary>
    public TimeSpan GatewayTimeout { get; set; } = TimeSpan.FromSeconds(10);
}

/// <summary>See <see cref="HomeserverOptions.Role"/>.</summary>
public enum ProcessRole
{
    Combined,
    FrontEnd,
}

using Homeserver.Streams;
using Npgsql;

namespace Homeserver.Streams;

/// <summary>
/// Writes the domain rows a stream row describes, into the writer's append batch, so they commit (or not) together
/// with the log row. One per row <see cref="Kind"/>; registered in DI by the area that owns the kind.
/// Commands must be plain INSERT/UPDATE/DELETE with positional parameters; they run after the log row is inserted.
/// </summary>
public interface IStreamRowPersister
{
    string Kind { get; }
    void AddCommands(NpgsqlBatch batch, StreamEntry entry);

    /// <summary>
    /// The commands of consecutive rows of this kind (in position order, as many as a group commit gathered). A
    /// persister may combine them into multi-row statements, as long as the effect is that of the rows in order.
    /// </summary>
    void AddCommands(NpgsqlBatch batch, IReadOnlyList<StreamEntry> run)
    {
        foreach (var entry in run) AddCommands(batch, entry);
    }
}

/// <summary>
/// Periodic upkeep of the domain tables behind a stream (pruning expired rows), run every <see cref="Period"/> by the
/// stream's first writer shard from its housekeeping timer, so that one silo does it however many there are.
/// Registered in DI by the area that owns the tables; a failure is logged and retried at the next period.
/// </summary>
public interface IStreamHousekeeper
{
    string Stream { get; }
    TimeSpan Period { get; }
    Task RunAsync(CancellationToken ct);
}

/// <summary>A per-silo hook into the reader: runs for every row of <see cref="Stream"/> before the silo's position
/// moves past it (cache invalidation lives here).</summary>
public interface IStreamRowHandler
{
    string Stream { get; }
    void Handle(StreamEntry entry);

    /// <summary>
    /// For a handler whose state lives only in memory (typing): how far back the log is replayed to it when the silo
    /// starts, so a silo joining later knows what is current without waiting for the next change. Zero: no replay.
    /// The replayed rows may interleave with live ones, so <see cref="Handle"/> must keep the newest per key.
    /// </summary>
    TimeSpan Replay => TimeSpan.Zero;
}

/// <summary>
/// Fault injection for tests, one per silo (a DI singleton, inert unless a test sets it).
/// </summary>
public sealed class StreamTestHooks
{
    /// <summary>Awaited by a writer before it commits a batch (positions already allocated).</summary>
    public Func<string, int, IReadOnlyList<StreamEntry>, Task>? BeforeCommit { get; set; }

    /// <summary>Return true to make this silo's reader drop a push notification on the floor.</summary>
    public Func<StreamAdvance, bool>? DropNotification { get; set; }

    /// <summary>Called by this silo's reader for every row it applies, in order, before its position moves.</summary>
    public Action<StreamEntry>? Applied { get; set; }
}

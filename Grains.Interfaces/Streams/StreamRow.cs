namespace Homeserver.Streams;

/// <summary>
/// One row to append to a stream. <see cref="Kind"/> selects the persister that writes the domain rows it
/// describes in the same transaction; <see cref="Key"/> is what waiters filter on (a room id, a user id);
/// <see cref="Payload"/> is JSON text.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record StreamRow(
    [property: Id(0)] string Kind,
    [property: Id(1)] string? Key,
    [property: Id(2)] string Payload);

/// <summary>A committed row of a stream, as readers see it.</summary>
[GenerateSerializer, Immutable]
public sealed record StreamEntry(
    [property: Id(0)] string Stream,
    [property: Id(1)] int Writer,
    [property: Id(2)] long Position,
    [property: Id(3)] string Kind,
    [property: Id(4)] string? Key,
    [property: Id(5)] string Payload);

/// <summary>What an append acknowledges: the rows are committed at these positions of this writer.</summary>
[GenerateSerializer, Immutable]
public sealed record AppendResult(
    [property: Id(0)] string Stream,
    [property: Id(1)] int Writer,
    [property: Id(2)] long[] Positions)
{
    /// <summary>The highest position written; a reader that reached it for this writer sees every row.</summary>
    public long LastPosition => Positions.Length == 0 ? 0 : Positions[^1];
}

/// <summary>
/// "Writer W of stream S advanced from <see cref="From"/> to <see cref="To"/>", with the rows in between.
/// Idempotent: a reader that is already at or past <see cref="To"/> ignores it; a reader behind
/// <see cref="From"/> catches up from the log first.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record StreamAdvance(
    [property: Id(0)] string Stream,
    [property: Id(1)] int Writer,
    [property: Id(2)] long From,
    [property: Id(3)] long To,
    [property: Id(4)] StreamEntry[] Entries,
    [property: Id(5)] int ShardGeneration = 0);

/// <summary>A writer's persisted-up-to position: every position at or below it has committed or aborted.</summary>
[GenerateSerializer, Immutable]
public sealed record WriterPosition(
    [property: Id(0)] string Stream,
    [property: Id(1)] int Writer,
    [property: Id(2)] long Position,
    [property: Id(3)] long Epoch,
    [property: Id(4)] string? Silo,
    [property: Id(5)] int ShardGeneration = 0);

/// <summary>One silo's reader positions for every stream and writer, and for each how long it has been behind the
/// newest position it was told of (zero when caught up; <see cref="LagSeconds"/> is null from a reader of an older
/// build, which did not report it).</summary>
[GenerateSerializer, Immutable]
public sealed record ReaderStatus(
    [property: Id(0)] string Silo,
    [property: Id(1)] IReadOnlyDictionary<string, IReadOnlyDictionary<int, long>> Positions,
    [property: Id(2)] IReadOnlyList<CacheStatus> Caches,
    [property: Id(3)] IReadOnlyDictionary<string, IReadOnlyDictionary<int, double>>? LagSeconds = null);

[GenerateSerializer, Immutable]
public sealed record CacheStatus(
    [property: Id(0)] string Name,
    [property: Id(1)] int Count,
    [property: Id(2)] long Hits,
    [property: Id(3)] long Misses,
    [property: Id(4)] long Invalidations);

/// <summary>Every writer's and every silo reader's position, per stream, and the operator's pins (silo endpoint by
/// writer key).</summary>
[GenerateSerializer, Immutable]
public sealed record ReplicationStatus(
    [property: Id(0)] IReadOnlyList<WriterPosition> Writers,
    [property: Id(1)] IReadOnlyList<ReaderStatus> Readers,
    [property: Id(2)] IReadOnlyDictionary<string, string>? Pins = null);

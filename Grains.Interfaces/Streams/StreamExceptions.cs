namespace Homeserver.Streams;

/// <summary>The stream's database is unreachable: nothing in the failed append was acknowledged; retry later.</summary>
[GenerateSerializer]
public sealed class StreamUnavailableException(string message) : Exception(message);

/// <summary>
/// Another activation of the same writer took over (a higher epoch in the database): this activation's append was
/// not committed and the activation shuts itself down. Retrying reaches the current activation.
/// </summary>
[GenerateSerializer]
public sealed class StreamWriterFencedException(string message) : Exception(message);

/// <summary>
/// The database refused the append's rows (a constraint or a check in a persister's commands, with this SQLSTATE):
/// nothing of it was committed. Other appends that shared its transaction are retried without it.
/// </summary>
[GenerateSerializer]
public sealed class StreamAppendRejectedException(string sqlState, string message) : Exception(message)
{
    [Id(0)] public string SqlState { get; } = sqlState;
}

/// <summary>
/// The <c>events</c> shard map changed (or is changing) since the caller routed this append: nothing was written.
/// The caller asks the map again and sends the append to the room's writer under <see cref="Generation"/>.
/// </summary>
[GenerateSerializer]
public sealed class EventShardsChangedException(int generation, bool sealing, string message) : Exception(message)
{
    [Id(0)] public int Generation { get; } = generation;
    /// <summary>A reshard is under way: the new map is not there yet.</summary>
    [Id(1)] public bool Sealing { get; } = sealing;
}

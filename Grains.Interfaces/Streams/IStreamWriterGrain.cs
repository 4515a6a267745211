using Orleans.Concurrency;

namespace Homeserver.Streams;

/// <summary>
/// The single writer of one shard of a stream. Key: <c>"{stream}/{writer}"</c> (see <see cref="StreamNames.WriterKey"/>),
/// e.g. <c>"events/2"</c> or <c>"typing/0"</c>. Positions come from the stream's PostgreSQL sequence and every
/// append is fenced by the writer's epoch in the database, so two activations can never both commit.
/// </summary>
public interface IStreamWriterGrain : IGrainWithStringKey
{
    /// <summary>Appends rows (and, through their persisters, the domain rows they describe) in one transaction
    /// shared with concurrent appends. Returns only after commit.</summary>
    Task<AppendResult> AppendAsync(StreamRow[] rows);

    /// <summary>An append of a room's rows to an <c>events</c> writer, routed by the shard map of
    /// <paramref name="shardGeneration"/>: refused with <see cref="EventShardsChangedException"/> unless that is this
    /// writer's generation and no reshard is sealing it, so no room ever writes to two writers out of order.</summary>
    Task<AppendResult> AppendRoutedAsync(StreamRow[] rows, int shardGeneration);

    /// <summary>Resharding, step 1: refuse routed appends from now on, let what was accepted commit, and answer the
    /// persisted-up-to position then (where this writer ended in the old generation).</summary>
    [Idempotent]
    Task<long> SealAsync();

    /// <summary>Resharding, step 2: take routed appends of <paramref name="shardGeneration"/>.</summary>
    [Idempotent]
    Task OpenAsync(int shardGeneration);

    /// <summary>The persisted-up-to position of this writer.</summary>
    [Idempotent]
    Task<WriterPosition> GetPositionAsync();

    /// <summary>Registers (or renews) a reader for push notifications. Subscriptions expire unless renewed.
    /// <paramref name="silo"/> is the reader's silo, dropped as soon as membership declares it dead; null for a reader
    /// in a front end without a silo (an Orleans client), whose subscription only expires.</summary>
    Task SubscribeAsync(IStreamReaderObserver reader, SiloAddress? silo);

    Task UnsubscribeAsync(IStreamReaderObserver reader);

    /// <summary>
    /// Moves this writer to another silo (an operator draining a silo, or a test placing one): the activation
    /// migrates when idle, keeping its readers' subscriptions; the new one takes a new epoch and continues from the
    /// database. With automatic rebalancing on (<c>WriterRebalanceDelay</c>), a writer moved away from its home
    /// returns there within a few seconds, unless it was pinned to the target first (the admin API's move does both).
    /// </summary>
    Task MoveToAsync(SiloAddress target);

    /// <summary>Forgets the operator's pin this activation read with its epoch (the admin API removed it from the
    /// database first), so that rebalancing sends the writer back to its hash home.</summary>
    Task ForgetPinAsync();

    /// <summary>The readers currently subscribed (for status reporting).</summary>
    Task<IStreamReaderObserver[]> GetSubscribersAsync();
}

/// <summary>A process's reader, as a grain observer: one per silo and one per front end without a silo, following every stream.</summary>
public interface IStreamReaderObserver : IGrainObserver
{
    [OneWay]
    Task OnAdvancedAsync(StreamAdvance advance);

    Task<ReaderStatus> GetStatusAsync();
}

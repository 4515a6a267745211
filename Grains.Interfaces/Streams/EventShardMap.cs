namespace Homeserver.Streams;

/// <summary>
/// One layout of the <c>events</c> stream: <see cref="Writers"/> writers, a room on writer
/// <c>hash(room) mod Writers</c>. Generation 0 is the layout the database started with; each reshard adds one.
/// </summary>
/// <param name="After">Every position of this generation is above it (the sequence's value when the previous
/// generation was sealed; 0 for generation 0).</param>
/// <param name="SealedAt">Where each writer of the previous generation ended: a reader applies nothing of this
/// generation before it has applied every writer up to here, so a room that moved never shows a new event before an
/// old one.</param>
[GenerateSerializer, Immutable]
public sealed record EventShardGeneration(
    [property: Id(0)] int Writers,
    [property: Id(1)] long After,
    [property: Id(2)] long[] SealedAt);

/// <summary>
/// Which writer of the <c>events</c> stream owns each room, now and in every earlier generation. A room's events are
/// totally ordered by position: its writes are serial, positions come from one sequence shared by every writer, and
/// each generation starts above everything the one before it wrote.
/// </summary>
/// <param name="ReshardingTo">A reshard to this many writers is under way: every writer is sealed until it ends.</param>
[GenerateSerializer, Immutable]
public sealed record EventShardMap(
    [property: Id(0)] EventShardGeneration[] Generations,
    [property: Id(1)] int? ReshardingTo)
{
    public static EventShardMap Initial(int writers) => new([new EventShardGeneration(Math.Max(1, writers), 0, [])], null);

    public int Generation => Generations.Length - 1;

    public EventShardGeneration Current => Generations[^1];

    /// <summary>Every writer that holds or held rooms (0 .. WriterCount-1): readers follow them all, and queries
    /// over a user's rooms bound each.</summary>
    public int WriterCount => Generations.Max(g => g.Writers);

    /// <summary>The writer a room's next event goes to.</summary>
    public int WriterFor(string roomId) => Shard(roomId, Current.Writers);

    /// <summary>The writer that wrote the room's event at <paramref name="position"/>.</summary>
    public int WriterAt(string roomId, long position)
    {
        for (var k = Generations.Length - 1; k > 0; k--)
            if (position > Generations[k].After) return Shard(roomId, Generations[k].Writers);
        return Shard(roomId, Generations[0].Writers);
    }

    /// <summary>
    /// The room's position in a token: every event of the room at or below it is in the token, none above it. Within
    /// one generation that is the token's position for the room's writer of that generation; the newest generation
    /// in which the token has gone past the generation's start decides (a reader's tokens include all of an earlier
    /// generation before anything of a later one).
    /// </summary>
    public long PositionIn(StreamToken token, string roomId)
    {
        var last = Generations.Length - 1;
        for (var k = last; k >= 0; k--)
        {
            var position = token.Get(StreamNames.Events, Shard(roomId, Generations[k].Writers));
            if (k > 0 && position <= Generations[k].After) continue;
            return k == last ? position : Math.Min(position, Generations[k + 1].After);
        }
        return 0;
    }

    private static int Shard(string roomId, int writers) =>
        writers <= 1 ? 0 : (int)(Fnv1a.Hash32Utf8(roomId) % (uint)writers);
}

/// <summary>
/// The shard map of the <c>events</c> stream (one grain, key 0), kept in grain state (Orleans' ADO.NET persistence on
/// the homeserver's PostgreSQL). Resharding seals every writer, records where each ended, writes the new generation
/// and opens the writers under it; a room grain whose append was refused meanwhile asks again and goes to its new
/// writer.
/// </summary>
public interface IEventShardMapGrain : IGrainWithIntegerKey
{
    /// <summary>Answers even while a reshard runs (writers ask it when they activate).</summary>
    [Idempotent, Orleans.Concurrency.AlwaysInterleave]
    Task<EventShardMap> GetAsync();

    /// <summary>Changes the number of <c>events</c> writers, live. Returns the new map.</summary>
    Task<EventShardMap> ReshardAsync(int writers);
}

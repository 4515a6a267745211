using Homeserver.Streams;

namespace Homeserver.Tests.Unit;

public sealed class EventShardMapTests
{
    // Generation 0: 2 writers. Generation 1 (after position 100): 5 writers. Generation 2 (after 200): 3 writers.
    private static readonly EventShardMap Map = new(
    [
        new EventShardGeneration(2, 0, []),
        new EventShardGeneration(5, 100, [100, 90]),
        new EventShardGeneration(3, 200, [200, 180, 150, 170, 160]),
    ], null);

    /// <summary>A room that lives on a different writer in every generation.</summary>
    private static string MovingRoom()
    {
        for (var i = 0; i < 10_000; i++)
        {
            var room = $"!r{i}:x";
            var w = Enumerable.Range(0, 3).Select(k => new EventShardMap(Map.Generations[..(k + 1)], null).WriterFor(room)).ToArray();
            if (w.Distinct().Count() == 3) return room;
        }
        throw new InvalidOperationException("no room moves every time");
    }

    private static StreamToken Token(params (int Writer, long Position)[] positions) =>
        positions.Aggregate(StreamToken.Zero, (t, p) => t.Advance(StreamNames.Events, p.Writer, p.Position, 5));

    [Fact]
    public void A_room_is_on_its_writer_of_the_generation_a_position_belongs_to()
    {
        var room = MovingRoom();
        var writers = Enumerable.Range(0, 3).Select(k => new EventShardMap(Map.Generations[..(k + 1)], null).WriterFor(room)).ToArray();
        Assert.Equal(writers[0], Map.WriterAt(room, 50));
        Assert.Equal(writers[0], Map.WriterAt(room, 100));
        Assert.Equal(writers[1], Map.WriterAt(room, 101));
        Assert.Equal(writers[2], Map.WriterAt(room, 201));
        Assert.Equal(writers[2], Map.WriterFor(room));
        Assert.Equal(5, Map.WriterCount);
        Assert.Equal(2, Map.Generation);
    }

    [Fact]
    public void A_rooms_position_in_a_token_comes_from_the_newest_generation_the_token_has_entered()
    {
        var room = MovingRoom();
        var w = Enumerable.Range(0, 3).Select(k => new EventShardMap(Map.Generations[..(k + 1)], null).WriterFor(room)).ToArray();

        // Before any reshard: the generation-0 writer's position.
        Assert.Equal(40, Map.PositionIn(Token((w[0], 40), (w[1], 40), (w[2], 40)), room));
        // Past generation 1's start on its writer: that position, capped where generation 2 starts.
        Assert.Equal(150, Map.PositionIn(Token((w[0], 100), (w[1], 150), (w[2], 120)), room));
        Assert.Equal(200, Map.PositionIn(Token((w[0], 100), (w[1], 260), (w[2], 190)), room));
        // Into generation 2 on its writer: that position, whatever the older writers say.
        Assert.Equal(230, Map.PositionIn(Token((w[0], 300), (w[1], 300), (w[2], 230)), room));
        // An old token (from before the reshards, no entry for the new writers) stays where it was.
        Assert.Equal(60, Map.PositionIn(Token((w[0], 60)), room));
    }
}

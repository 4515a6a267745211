using Homeserver.Errors;
using Homeserver.Streams;

namespace Homeserver.Tests.Streams;

public sealed class StreamTokenTests
{
    [Fact]
    public void Serialises_to_url_safe_text_and_back()
    {
        var token = StreamToken.Zero
            .Advance(StreamNames.Events, 0, 100).Advance(StreamNames.Events, 1, 105).Advance(StreamNames.Events, 2, 100)
            .Advance(StreamNames.Typing, 0, 7);
        var text = token.Serialize();
        Assert.Matches("^[A-Za-z0-9._~-]+$", text);
        Assert.True(StreamToken.TryParse(text, out var parsed));
        Assert.Equal(token, parsed);
        Assert.Equal(105, parsed.Get(StreamNames.Events, 1));
        Assert.Equal(7, parsed.Get(StreamNames.Typing, 0));
    }

    [Fact]
    public void Sharded_stream_is_a_minimum_plus_the_writers_ahead()
    {
        var position = StreamPosition.FromWriters(new Dictionary<int, long> { [0] = 10, [1] = 15, [2] = 10 });
        Assert.Equal(10, position.Min);
        Assert.Equal([(1, 15L)], position.Ahead.ToList());
        Assert.Equal(10, position.Get(2));
        Assert.Equal(10, position.Get(7));
        Assert.Equal(15, position.Max);
    }

    [Theory]
    [InlineData("")]
    [InlineData("v2_0_0_0_0_0_0_0_0_0")]
    [InlineData("v1_0_0_0")]
    [InlineData("v1_0_0_0_0_0_0_0_0_0_0")]
    [InlineData("v1_a_0_0_0_0_0_0_0_0")]
    [InlineData("v1_-1_0_0_0_0_0_0_0_0")]
    [InlineData("v1_01_0_0_0_0_0_0_0_0")]
    [InlineData("v1_5~1.3_0_0_0_0_0_0_0_0")]
    [InlineData("v1_5~1.7~1.8_0_0_0_0_0_0_0_0")]
    [InlineData("v1_5~1_0_0_0_0_0_0_0_0")]
    [InlineData("v1_99999999999999999999_0_0_0_0_0_0_0_0")]
    [InlineData("s72594_4483_1934")]
    public void Malformed_tokens_are_rejected_with_a_matrix_error(string text)
    {
        Assert.False(StreamToken.TryParse(text, out _));
        var e = Assert.Throws<MatrixException>(() => StreamToken.Parse(text));
        Assert.Equal(ErrorCodes.InvalidParam, e.ErrCode);
        Assert.Equal(400, e.Status);
    }

    [Fact]
    public void Comparison_is_writer_by_writer()
    {
        var a = StreamToken.Zero.Advance(StreamNames.Events, 0, 10).Advance(StreamNames.Events, 1, 20);
        var b = StreamToken.Zero.Advance(StreamNames.Events, 0, 15).Advance(StreamNames.Events, 1, 15);
        Assert.False(a.Covers(b));
        Assert.False(b.Covers(a));
        var merged = a.Merge(b);
        Assert.True(merged.Covers(a));
        Assert.True(merged.Covers(b));
        Assert.Equal(15, merged.Get(StreamNames.Events, 0));
        Assert.Equal(20, merged.Get(StreamNames.Events, 1));
        Assert.True(a.Covers(a));
    }

    [Fact]
    public void Merge_of_minimums_keeps_unnamed_writers_correct()
    {
        // Writers 0..2: a = {0:100, 1:110, 2:100}, b = {0:105, 1:105, 2:105}.
        var a = StreamToken.Zero.With(StreamNames.Events, StreamPosition.FromWriters(new Dictionary<int, long> { [0] = 100, [1] = 110, [2] = 100 }));
        var b = StreamToken.Zero.With(StreamNames.Events, StreamPosition.FromWriters(new Dictionary<int, long> { [0] = 105, [1] = 105, [2] = 105 }));
        var m = a.Merge(b);
        Assert.Equal(105, m.Min(StreamNames.Events));
        Assert.Equal(105, m.Get(StreamNames.Events, 0));
        Assert.Equal(110, m.Get(StreamNames.Events, 1));
        Assert.Equal(105, m.Get(StreamNames.Events, 2));
    }

    [Fact]
    public void Advance_never_moves_backwards()
    {
        var t = StreamToken.Zero.Advance(StreamNames.Receipts, 0, 9);
        Assert.Same(t[StreamNames.Receipts], t.Advance(StreamNames.Receipts, 0, 3)[StreamNames.Receipts]);
        Assert.Equal(9, t.Advance(StreamNames.Receipts, 0, 3).Get(StreamNames.Receipts, 0));
    }
}

public sealed class StreamPositionNormaliseTests
{
    [Fact]
    public void Minimum_rises_once_every_writer_has_passed_it()
    {
        var t = StreamToken.Zero.Advance(StreamNames.Events, 0, 10, 3).Advance(StreamNames.Events, 1, 12, 3);
        Assert.Equal(0, t.Min(StreamNames.Events));
        t = t.Advance(StreamNames.Events, 2, 11, 3);
        Assert.Equal(10, t.Min(StreamNames.Events));
        Assert.Equal(12, t.Get(StreamNames.Events, 1));
        Assert.Equal(11, t.Get(StreamNames.Events, 2));
        Assert.Equal(10, t.Get(StreamNames.Events, 0));
    }
}

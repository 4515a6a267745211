using Homeserver.Rooms;

namespace Homeserver.Tests.Unit;

public class RoomStreamRowsTests
{
    // The persister and the local reader get back the record a payload was made from; any other string with the same
    // text (a row that crossed silos, or came from the log) is parsed, to an equal record.
    [Fact]
    public void PayloadMadeHereGivesItsRecordAndAnyOtherCopyParsesEqual()
    {
        var row = new RoomEventRow("$e", "!r:hs", "m.room.member", "@u:hs", "@u:hs", 1, 7,
            """{"content":{"membership":"join","displayname":"\"Ü\""},"type":"m.room.member"}""",
            Membership: "join", Relation: new EventRelation("$p", "m.thread", null));
        var stream = RoomStreamRows.Event(row);
        Assert.Same(row, RoomStreamRows.Parse<RoomEventRow>(stream.Payload));

        var copy = new string(stream.Payload.AsSpan());
        var parsed = RoomStreamRows.Parse<RoomEventRow>(copy);
        Assert.NotSame(row, parsed);
        Assert.Equal(row, parsed);

        var notice = RoomStreamRows.MemberNotice(new MemberNoticeRow("!r:hs", "@u:hs", "join", "$e"));
        Assert.Equal(new MemberNoticeRow("!r:hs", "@u:hs", "join", "$e"), RoomStreamRows.Parse<MemberNoticeRow>(new string(notice.Payload.AsSpan())));
    }
}

using System.Text;

namespace Homeserver.Rooms;

/// <summary>
/// An event as stored: its JSON as served (redacted in place when redacted, with <c>unsigned.redacted_because</c>;
/// state events carry <c>unsigned.replaces_state</c>/<c>prev_content</c>) plus its place in the room
/// (<see cref="Topological"/>, its depth) and in the events stream (<see cref="StreamWriter"/>,
/// <see cref="StreamPosition"/>). <see cref="DeviceId"/> and <see cref="TxnId"/> are the sender's device and
/// transaction id, for <c>unsigned.transaction_id</c> in that device's copy.
/// The JSON is held as UTF-8 (<see cref="Utf8Json"/>, never changed once made): a silo keeps tens of thousands of state
/// events in its current-state snapshots, and UTF-16 text would cost twice the bytes; <see cref="Json"/> decodes it for
/// callers that want text.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record StoredEvent(
    [property: Id(0)] string EventId,
    [property: Id(1)] string RoomId,
    [property: Id(2)] string Type,
    [property: Id(3)] string? StateKey,
    [property: Id(4)] string Sender,
    [property: Id(5)] long OriginServerTs,
    [property: Id(6)] long Topological,
    [property: Id(7)] int StreamWriter,
    [property: Id(8)] long StreamPosition,
    [property: Id(9)] byte[] Utf8Json,
    [property: Id(10)] string? DeviceId,
    [property: Id(11)] string? TxnId,
    [property: Id(12)] bool Redacted)
{
    public StoredEvent(string EventId, string RoomId, string Type, string? StateKey, string Sender, long OriginServerTs, long Topological,
        int StreamWriter, long StreamPosition, string Json, string? DeviceId, string? TxnId, bool Redacted)
        : this(EventId, RoomId, Type, StateKey, Sender, OriginServerTs, Topological, StreamWriter, StreamPosition, Encoding.UTF8.GetBytes(Json),
            DeviceId, TxnId, Redacted)
    {
    }

    public bool IsState => StateKey is not null;

    /// <summary>The event's JSON as text, decoded on each call (a new string): parse <see cref="Utf8Json"/> where a tree
    /// or a field is wanted.</summary>
    public string Json => Encoding.UTF8.GetString(Utf8Json);
}

/// <summary>A user's current membership of one room.</summary>
[GenerateSerializer, Immutable]
public sealed record UserRoomMembership(
    [property: Id(0)] string RoomId,
    [property: Id(1)] string Membership,
    [property: Id(2)] string EventId,
    [property: Id(3)] string Sender,
    [property: Id(4)] int StreamWriter,
    [property: Id(5)] long StreamPosition,
    [property: Id(6)] long Topological,
    [property: Id(7)] bool Forgotten);

/// <summary>One change of a user's membership (a row of the membership history).</summary>
[GenerateSerializer, Immutable]
public sealed record MembershipChange(
    [property: Id(0)] string RoomId,
    [property: Id(1)] string UserId,
    [property: Id(2)] string Membership,
    [property: Id(3)] string EventId,
    [property: Id(4)] string Sender,
    [property: Id(5)] int StreamWriter,
    [property: Id(6)] long StreamPosition,
    [property: Id(7)] long Topological);

[GenerateSerializer, Immutable]
public sealed record RoomInfo(
    [property: Id(0)] string RoomId,
    [property: Id(1)] string RoomVersion,
    [property: Id(2)] string Creator,
    [property: Id(3)] bool IsPublic);

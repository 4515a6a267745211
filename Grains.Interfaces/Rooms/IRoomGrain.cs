namespace Homeserver.Rooms;

/// <summary>
/// One room: owns its current state and membership, applies the authorization rules and builds its events in
/// order (depth, prev_events), appending them to the room's <c>events</c> stream writer. Key: the room id
/// (<c>!opaque:server</c>). Calls are serialised per room, so every event builds on the one before it; a unique
/// index on (room, depth) makes a stray second activation fail rather than fork the room.
/// </summary>
public interface IRoomGrain : IGrainWithStringKey
{
    /// <summary>Creates the room with all its initial events in one transaction. 400 <c>M_ROOM_IN_USE</c> when the
    /// alias is taken, <c>M_UNSUPPORTED_ROOM_VERSION</c> for an unknown version.</summary>
    Task<RoomWriteResult> CreateAsync(CreateRoomCommand command);

    /// <summary>Sends a message event (no state key) or a state event. Idempotent per (sender, device, txn id).</summary>
    [Idempotent]
    Task<RoomWriteResult> SendAsync(SendEventCommand command);

    /// <summary>
    /// Sends the room's <c>m.room.canonical_alias</c> without <paramref name="alias"/> (as <c>alias</c> or among
    /// <c>alt_aliases</c>), for a deleted alias, read from the room's own state as the write runs: a read of the silo's
    /// state cache may not yet hold a canonical alias event just sent on another silo. No event when it names the alias
    /// nowhere; 403 when the user may not send it.
    /// </summary>
    Task<RoomWriteResult> RemoveCanonicalAliasAsync(string alias, string userId);

    /// <summary>Join, invite, leave, kick, ban or unban.</summary>
    Task<RoomWriteResult> SetMembershipAsync(MembershipCommand command);

    /// <summary>Sends an <c>m.room.redaction</c> and redacts the stored target. Idempotent per txn id.</summary>
    [Idempotent]
    Task<RoomWriteResult> RedactAsync(RedactCommand command);

    /// <summary>Hides the room from the user's archive; only allowed when they are no longer joined.</summary>
    Task<RoomWriteResult> ForgetAsync(string userId);

    /// <summary>
    /// Replaces this room with a new one of another version (spec "Room Upgrades"): a tombstone here, the new room
    /// with the important state, power levels and bans copied and a <c>predecessor</c> link, the local aliases and the
    /// directory listing moved, and this room's power levels raised so that ordinary members can no longer talk or
    /// invite. 403 for a user who may not send the tombstone, 400 <c>M_UNSUPPORTED_ROOM_VERSION</c>.
    /// </summary>
    Task<RoomUpgradeResult> UpgradeAsync(RoomUpgradeCommand command);

    /// <summary>
    /// Deletes the room from the database (an admin's room deletion, after its members were made to leave): one
    /// <c>room_purge</c> row on the room's writer, queued behind the room's other writes, so no event can follow it.
    /// The room is unknown afterwards (404). 400 <c>M_UNKNOWN</c> "Users are still joined to this room" while a local
    /// user is joined, unless <paramref name="force"/>, as Synapse answers; 404 for an unknown room.
    /// </summary>
    Task<RoomWriteResult> PurgeAsync(bool force);
}

/// <summary>What a write produced: the event (null for writes without one, e.g. forget) and the events stream
/// position to wait for (read-your-writes).</summary>
[GenerateSerializer, Immutable]
public sealed record RoomWriteResult(
    [property: Id(0)] string? EventId,
    [property: Id(1)] int Writer,
    [property: Id(2)] long Position,
    // Writes made for the caller beside the event (a join of an upgraded room copies the user's push rules, tags and
    // m.direct for the old room): the push_rules and account_data positions the caller waits for too, 0 for none.
    [property: Id(3)] long PushRulesPosition = 0,
    [property: Id(4)] long AccountDataPosition = 0);

[GenerateSerializer, Immutable]
public sealed record RoomUpgradeCommand(
    [property: Id(0)] string Sender,
    [property: Id(1)] string? DeviceId,
    [property: Id(2)] string NewVersion,
    [property: Id(3)] string NewRoomId);

/// <summary>The replacement room and every write the upgrade made (to wait for before answering).</summary>
[GenerateSerializer, Immutable]
public sealed record RoomUpgradeResult(
    [property: Id(0)] string ReplacementRoom,
    [property: Id(1)] RoomWriteResult[] Writes);

/// <summary>A parsed <c>createRoom</c> body. JSON-valued fields are JSON text (objects), as sent by the client.</summary>
[GenerateSerializer, Immutable]
public sealed record CreateRoomCommand(
    [property: Id(0)] string Creator,
    [property: Id(1)] string? DeviceId,
    [property: Id(2)] string RoomVersion,
    [property: Id(3)] string Preset,
    [property: Id(4)] bool IsPublic,
    [property: Id(5)] string? Name,
    [property: Id(6)] string? Topic,
    [property: Id(7)] string? AliasLocalpart,
    [property: Id(8)] string[] Invite,
    [property: Id(9)] bool IsDirect,
    [property: Id(10)] string? CreationContentJson,
    [property: Id(11)] string? PowerLevelOverrideJson,
    [property: Id(12)] string[] InitialStateJson);

/// <summary>A client-sent event. <see cref="StateKey"/> null means a message event.</summary>
[GenerateSerializer, Immutable]
public sealed record SendEventCommand(
    [property: Id(0)] string Sender,
    [property: Id(1)] string? DeviceId,
    [property: Id(2)] string? TxnId,
    [property: Id(3)] string Type,
    [property: Id(4)] string? StateKey,
    [property: Id(5)] string ContentJson);

public enum MembershipAction
{
    Join,
    Invite,
    Leave,
    Kick,
    Ban,
    Unban,
}

[GenerateSerializer, Immutable]
public sealed record MembershipCommand(
    [property: Id(0)] string Sender,
    [property: Id(1)] string Target,
    [property: Id(2)] MembershipAction Action,
    [property: Id(3)] string? Reason,
    [property: Id(4)] bool IsDirect = false,
    // Further keys the client put in the request body, kept in the event's content (a JSON object as text).
    [property: Id(5)] string? ExtraContentJson = null,
    // A guest joins only rooms whose m.room.guest_access is can_join (spec "Guest access").
    [property: Id(6)] bool SenderIsGuest = false);

[GenerateSerializer, Immutable]
public sealed record RedactCommand(
    [property: Id(0)] string Sender,
    [property: Id(1)] string? DeviceId,
    [property: Id(2)] string TxnId,
    [property: Id(3)] string EventId,
    [property: Id(4)] string? Reason);

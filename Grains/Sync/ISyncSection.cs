using System.Text.Json.Nodes;
using Homeserver.Accounts;
using Homeserver.Streams;

namespace Homeserver.Sync;

/// <summary>
/// One part of a /sync response fed by a stream other than room events (account data, to-device, typing, receipts,
/// presence, device lists...). Registered in DI; the sync handler calls every section for every response and wakes a
/// long-poll on the keys each section names.
/// </summary>
public interface ISyncSection
{
    /// <summary>Stream keys that should wake this user's long-poll (e.g. the user id for to-device).</summary>
    IEnumerable<string> WakeKeys(SyncContext context);

    /// <summary>Families of keys that should wake it too, for sections that follow every member of the user's rooms
    /// (presence): one shared member set per room rather than a key per member.</summary>
    IEnumerable<KeyFamily> WakeKeyFamilies(SyncContext context) => [];

    /// <summary>Adds this section's data for (Since, To] to the response; sets <see cref="SyncContext.HasChanges"/>
    /// when it added anything a client must see.</summary>
    Task ContributeAsync(SyncContext context, JsonObject response);

    /// <summary>Called once as a /sync request starts, before it waits for anything (presence: a syncing client keeps
    /// its user online for as long as it waits).</summary>
    Task RequestStartedAsync(Requester requester, SyncRequest request) => Task.CompletedTask;
}

/// <summary>What a /sync computes over: who asks, from where to where, with which filter.</summary>
public sealed class SyncContext
{
    public required Requester Requester { get; init; }
    /// <summary>Null for an initial sync.</summary>
    public required StreamToken? Since { get; init; }
    public required StreamToken To { get; init; }
    public required SyncFilter Filter { get; init; }
    public required bool FullState { get; init; }
    /// <summary>The <c>set_presence</c> query parameter ("online", "offline", "unavailable"), or null.</summary>
    public string? SetPresence { get; init; }
    /// <summary>Rooms the user is joined to as of <see cref="To"/>.</summary>
    public required IReadOnlyList<string> JoinedRooms { get; init; }
    /// <summary>Rooms this device peeks into (MSC2753) as of <see cref="To"/>; shown under <c>rooms.peek</c> unless joined.</summary>
    public IReadOnlyList<RoomPeek> PeekedRooms { get; init; } = [];
    /// <summary>Per joined room in the response: the room's object under <c>rooms.join</c> (sections add
    /// <c>ephemeral</c>, <c>account_data</c>, <c>unread_notifications</c>).</summary>
    public Dictionary<string, JsonObject> JoinedRoomResponses { get; } = new(StringComparer.Ordinal);
    /// <summary>The current states the room part read for the rooms it sent in full (a sync from scratch or with full
    /// state), by room: sections use them rather than reading each room's state again. With lazy-loaded members they
    /// hold only some member events (<see cref="RoomSyncState"/>).</summary>
    public Dictionary<string, RoomSyncState> RoomStates { get; } = new(StringComparer.Ordinal);
    public bool HasChanges { get; set; }

    /// <summary>Whether any membership changed in (Since, To] in a room the user is or was in (set by the room part
    /// of the handler before sections run; conservative: true when it could not tell).</summary>
    public bool MembershipChanged { get; set; }

    /// <summary>The membership changes of others in (Since, To] in the user's joined rooms, in stream order, when the
    /// room part read every one of them (each room's whole window, no filter hiding any); null when it could not tell
    /// (then sections ask the database). A join into a room of 10,000 lets each woken long-poll name the joiner's
    /// device list from the event in hand instead of three queries.</summary>
    public List<(string RoomId, string UserId, string Membership)>? KnownMembershipChanges { get; set; } = [];

    /// <summary>Whether any writer of <paramref name="stream"/> moved between <see cref="Since"/> and <see cref="To"/>
    /// (always true for an initial sync). A section whose stream did not move has nothing new to read.</summary>
    public bool StreamMoved(string stream) => Since is null || !Since[stream].Covers(To[stream]);

    /// <summary>The room's object under <c>rooms.join</c>, created if the room had no timeline changes.</summary>
    public Func<string, JsonObject> JoinedRoom { get; set; } = _ => new JsonObject();
}

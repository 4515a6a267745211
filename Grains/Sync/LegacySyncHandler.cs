using System.Text.Json.Nodes;
using Homeserver.Accounts;
using Homeserver.AccountData;
using Homeserver.Presence;
using Homeserver.Receipts;
using Homeserver.Rooms;
using Homeserver.RoomDirectory;
using Homeserver.Streams;
using Microsoft.Extensions.Options;

namespace Homeserver.Sync;

/// <summary>
/// The API before /sync that clients, bridges and suites still call (spec r0.6.1: <c>GET /events</c>,
/// <c>GET /initialSync</c>, <c>GET /rooms/{roomId}/initialSync</c>). Built on /sync rather than beside it: the same
/// tokens (a token from either works in the other), the same waiting and the same sections for what is not a room
/// event; only the shape differs, a flat list of events each naming its room.
/// </summary>
public sealed class LegacySyncHandler(
    SyncHandler sync,
    RoomEventStore store,
    RoomVisibility visibility,
    EventShards shards,
    StreamNotifier notifier,
    ReplicationBarrier barrier,
    PresenceStore presence,
    ReceiptStore receipts,
    AccountDataStore accountData,
    PublicRoomStore directory,
    Typing.TypingState typing,
    IOptions<PresenceOptions> presenceOptions)
{
    public const int DefaultEventsLimit = 100;
    public const int MaxEventsLimit = 1000;
    private static readonly TimeSpan BarrierTimeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// <c>GET /events</c>: what happened after <paramref name="from"/> (after now when absent), waiting up to the
    /// timeout for something. Room events come in stream order, at most <paramref name="limit"/>; when there were more,
    /// <c>end</c> stops just after the last one returned, so the next call goes on from there.
    /// <paramref name="roomId"/> narrows it to one room, which a user outside it may follow when its history is world
    /// readable (peeking).
    /// </summary>
    public async Task<JsonObject> EventsAsync(Requester requester, string? from, TimeSpan timeout, int limit, string? roomId,
        CancellationToken ct, CancellationToken stopWaiting = default)
    {
        StreamToken since;
        if (from is null)
        {
            await barrier.WaitAsync(StreamNames.All, BarrierTimeout, ct);
            since = notifier.Current;
        }
        else since = StreamToken.Parse(from, "from");

        if (roomId is not null && await store.GetMembershipAsync(roomId, requester.UserId) != "join")
            return await PeekAsync(requester, roomId, since, timeout, limit, ct, stopWaiting);

        // A timeline of one event is enough for /sync to say which rooms moved; the events themselves are read below,
        // oldest first, which /sync (newest last, cut at the front) cannot give.
        var filter = new JsonObject { ["room"] = new JsonObject { ["timeline"] = new JsonObject { ["limit"] = 1 } } };
        if (roomId is not null) filter["room"]!["rooms"] = new JsonArray(roomId);
        var response = await sync.SyncAsync(requester, new SyncRequest(since.Serialize(), timeout, filter.ToJsonString(), false, null), ct, stopWaiting);
        var to = StreamToken.Parse(response["next_batch"]!.GetValue<string>());

        var rooms = response["rooms"]!;
        var moved = Keys(rooms["join"]).Concat(Keys(rooms["leave"])).Distinct().ToList();
        var (events, end) = await RoomEventsAsync(requester.UserId, moved, since, to, limit);
        var chunk = new JsonArray();
        foreach (var e in events) chunk.Add(V1(RoomEventFormat.ToClient(e, requester.UserId, requester.DeviceId)));
        foreach (var invited in Keys(rooms["invite"]))
            if ((await store.GetCurrentStateAsync(invited)).Get("m.room.member", requester.UserId) is { } invite
                && invite.StreamPosition > store.PositionIn(since, invited) && invite.StreamPosition <= store.PositionIn(to, invited))
                chunk.Add(V1(RoomEventFormat.ToClient(invite)));
        foreach (var (id, room) in Rooms(rooms["join"]))
        {
            AddWithRoom(chunk, room["ephemeral"], id);
            AddWithRoom(chunk, room["account_data"], id);
        }
        AddWithRoom(chunk, response["presence"], null);
        AddWithRoom(chunk, response["account_data"], null);
        return new JsonObject { ["chunk"] = chunk, ["start"] = since.Serialize(), ["end"] = end.Serialize() };
    }

    /// <summary>
    /// A user outside the room following it (only world-readable rooms): the room's events, its receipts, who types
    /// in it and the presence of its members, as a member would get them.
    /// </summary>
    private async Task<JsonObject> PeekAsync(Requester requester, string roomId, StreamToken since, TimeSpan timeout, int limit,
        CancellationToken ct, CancellationToken stopWaiting)
    {
        await visibility.RequireReadableAsync(roomId, requester.UserId);
        await barrier.WaitAsync(StreamNames.All, BarrierTimeout, ct);
        var members = (await store.GetCurrentStateAsync(roomId)).JoinedMembers;
        var keys = new List<string> { roomId };
        if (presenceOptions.Value.EnablePresence) keys.AddRange(members.Select(PresenceStore.Key));
        using var waitEnds = CancellationTokenSource.CreateLinkedTokenSource(ct, stopWaiting);
        if (!notifier.ChangedSince(since, keys) && timeout > TimeSpan.Zero && !waitEnds.IsCancellationRequested)
            await notifier.WaitForChangeAsync(since, keys, timeout, waitEnds.Token);
        var to = notifier.Current.Merge(since);

        var (events, end) = await RoomEventsAsync(requester.UserId, [roomId], since, to, limit);
        var chunk = new JsonArray();
        foreach (var e in events) chunk.Add(V1(RoomEventFormat.ToClient(e, requester.UserId, requester.DeviceId)));
        if (await ReceiptEventAsync(roomId, requester.UserId,
                since.Get(StreamNames.Receipts, UserStreamSync.Writer), to.Get(StreamNames.Receipts, UserStreamSync.Writer)) is { } receipt)
            chunk.Add(receipt);
        if (typing.Get(roomId) is { } typingNow && typingNow.Position > since.Get(StreamNames.Typing, UserStreamSync.Writer)
            && typingNow.Position <= to.Get(StreamNames.Typing, UserStreamSync.Writer))
            chunk.Add(new JsonObject
            {
                ["type"] = "m.typing",
                ["room_id"] = roomId,
                ["content"] = new JsonObject { ["user_ids"] = new JsonArray(typingNow.UserIds.Select(u => (JsonNode)u).ToArray()) },
            });
        foreach (var p in await PresenceAsync(members, since.Get(StreamNames.Presence, UserStreamSync.Writer), to.Get(StreamNames.Presence, UserStreamSync.Writer)))
            chunk.Add(p);
        return new JsonObject { ["chunk"] = chunk, ["start"] = since.Serialize(), ["end"] = end.Serialize() };
    }

    /// <summary>The room's receipts that changed in (from, to], as the one legacy <c>m.receipt</c> event naming its room;
    /// null when none did.</summary>
    private async Task<JsonObject?> ReceiptEventAsync(string roomId, string userId, long from, long to)
    {
        var changed = await receipts.GetChangesAsync([roomId], userId, from, to);
        if (changed.Count == 0) return null;
        var receipt = ReceiptsSyncSection.ReceiptEvent(changed);
        receipt["room_id"] = roomId;
        return receipt;
    }


    /// <summary>The users' presence changed in (from, to], as legacy <c>m.presence</c> events; none when presence is off.</summary>
    private async Task<List<JsonObject>> PresenceAsync(IReadOnlyCollection<string> users, long from, long to)
    {
        var result = new List<JsonObject>();
        if (!presenceOptions.Value.EnablePresence || users.Count == 0) return result;
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        foreach (var p in await presence.GetChangesAsync(users, from, to))
            result.Add(V1(new JsonObject { ["type"] = "m.presence", ["sender"] = p.UserId, ["content"] = PresenceSyncSection.Content(p, now) }));
        return result;
    }

    /// <summary>
    /// An event as the legacy API gave it: the sender also as <c>user_id</c>, and a presence event's user inside its
    /// content, where clients of that API look for them.
    /// </summary>
    private static JsonObject V1(JsonObject e)
    {
        if (e["sender"] is JsonValue sender && sender.TryGetValue<string>(out var userId))
        {
            e["user_id"] ??= userId;
            if (e["type"]?.GetValue<string>() == "m.presence" && e["content"] is JsonObject content) content["user_id"] ??= userId;
        }
        return e;
    }

    /// <summary>
    /// The rooms' events the user may see in (since, to], oldest first, at most <paramref name="limit"/>, and the token
    /// that follows the last of them. Positions come from one sequence shared by every writer, so cutting the list at
    /// position P means: every writer at P (never behind <paramref name="since"/>, never ahead of <paramref name="to"/>).
    /// </summary>
    private async Task<(List<StoredEvent> Events, StreamToken End)> RoomEventsAsync(string userId, IReadOnlyList<string> roomIds,
        StreamToken since, StreamToken to, int limit)
    {
        var all = new List<StoredEvent>();
        foreach (var roomId in roomIds)
        {
            var events = await store.GetEventsAfterStreamAsync(roomId, store.PositionIn(since, roomId), store.PositionIn(to, roomId), limit + 1);
            all.AddRange(await visibility.VisibleToMemberAsync(userId, roomId, events));
        }
        all.Sort((a, b) => a.StreamPosition.CompareTo(b.StreamPosition));
        if (all.Count <= limit) return (all, to);

        var taken = all.Take(limit).ToList();
        var cut = taken[^1].StreamPosition;
        var writers = new Dictionary<int, long>();
        for (var w = 0; w < shards.Current.WriterCount; w++)
            writers[w] = Math.Max(since.Get(StreamNames.Events, w), Math.Min(to.Get(StreamNames.Events, w), cut));
        return (taken, to.With(StreamNames.Events, StreamPosition.FromWriters(writers)));
    }

    /// <summary>
    /// <c>GET /initialSync</c>: every room of the user with its current state and latest <paramref name="limit"/>
    /// messages (rooms left too when <paramref name="archived"/>), presence, receipts and account data, and the token
    /// /events goes on from.
    /// </summary>
    public async Task<JsonObject> InitialSyncAsync(Requester requester, int limit, bool archived, CancellationToken ct)
    {
        var filter = new JsonObject
        {
            ["room"] = new JsonObject { ["timeline"] = new JsonObject { ["limit"] = limit }, ["include_leave"] = archived },
            // As Synapse: push rules are no account data of this API (its clients read them from /pushrules).
            ["account_data"] = new JsonObject { ["not_types"] = new JsonArray(PushRulesType) },
        };
        var response = await sync.SyncAsync(requester, new SyncRequest(null, TimeSpan.Zero, filter.ToJsonString(), false, null), ct);
        var end = response["next_batch"]!.GetValue<string>();
        var rooms = new JsonArray();
        var receipts = new JsonArray();
        foreach (var (roomId, room) in Rooms(response["rooms"]!["join"]))
        {
            var entry = await RoomEntryAsync(roomId, "join", room, end, upTo: null);
            entry["account_data"] = RoomAccountData(EventsOf(room["account_data"]));
            rooms.Add(entry);
            foreach (var e in WithRoom(room["ephemeral"], roomId).OfType<JsonObject>())
                if (e["type"]?.GetValue<string>() == "m.receipt") receipts.Add(e.DeepClone());
        }
        foreach (var (roomId, _) in Rooms(response["rooms"]!["invite"]))
        {
            var invite = (await store.GetCurrentStateAsync(roomId)).Get("m.room.member", requester.UserId);
            var entry = new JsonObject { ["room_id"] = roomId, ["membership"] = "invite" };
            if (invite is not null)
            {
                entry["invite"] = V1(RoomEventFormat.ToClient(invite));
                entry["inviter"] = invite.Sender;
            }
            rooms.Add(entry);
        }
        foreach (var (roomId, room) in Rooms(response["rooms"]!["leave"]))
        {
            var membership = (await store.GetCurrentStateAsync(roomId)).Get("m.room.member", requester.UserId);
            rooms.Add(await RoomEntryAsync(roomId, membership is null ? "leave" : RoomEventFormat.ContentString(membership.Utf8Json, "membership") ?? "leave",
                room, end, upTo: membership?.Topological));
        }
        return new JsonObject
        {
            ["end"] = end,
            ["rooms"] = rooms,
            ["presence"] = WithRoom(response["presence"], null),
            ["account_data"] = response["account_data"]?["events"]?.DeepClone() ?? new JsonArray(),
            ["receipts"] = receipts,
        };
    }

    // One room of /initialSync from its /sync entry: the timeline as messages, the room's state (current, or as the
    // user left it) in place of /sync's state-before-the-timeline.
    private async Task<JsonObject> RoomEntryAsync(string roomId, string membership, JsonNode room, string end, long? upTo)
    {
        var timeline = room["timeline"];
        var chunk = WithRoom(timeline, roomId);
        var state = new JsonArray();
        foreach (var e in await StateAsync(roomId, upTo)) state.Add(V1(RoomEventFormat.ToClient(e)));
        return new JsonObject
        {
            ["room_id"] = roomId,
            ["membership"] = membership,
            ["messages"] = new JsonObject
            {
                ["chunk"] = chunk,
                ["start"] = timeline?["prev_batch"]?.DeepClone() ?? PaginationToken.Topological(1),
                ["end"] = end,
            },
            ["state"] = state,
            ["visibility"] = await directory.IsPublishedAsync(roomId) == true ? "public" : "private",
        };
    }

    /// <summary>
    /// <c>GET /rooms/{roomId}/initialSync</c>: one room as a member sees it now, as a former member saw it when they
    /// left, or as anyone sees a world-readable room; 403 otherwise.
    /// </summary>
    public async Task<JsonObject> RoomInitialSyncAsync(Requester requester, string roomId, int limit, CancellationToken ct)
    {
        await barrier.WaitAsync(StreamNames.All, BarrierTimeout, ct);
        var upTo = await visibility.RequireReadableAsync(roomId, requester.UserId);
        var current = await store.GetCurrentStateAsync(roomId);
        var membership = current.Membership(requester.UserId) ?? "leave";
        var from = (upTo ?? await store.GetMaxTopologicalAsync(roomId)) + 1;
        var page = await store.GetEventsByTopologicalAsync(roomId, from, Direction.Backwards, limit);
        var chunk = new JsonArray();
        foreach (var e in page.Reverse())
            if (await visibility.CanSeeAsync(requester.UserId, e)) chunk.Add(V1(RoomEventFormat.ToClient(e, requester.UserId, requester.DeviceId)));
        var state = await StateAsync(roomId, upTo);
        var stateJson = new JsonArray();
        foreach (var e in state) stateJson.Add(V1(RoomEventFormat.ToClient(e)));

        // Presence and receipts as of now: only for whoever may read the room now, not for a former member.
        var presenceJson = new JsonArray();
        var receiptsJson = new JsonArray();
        if (upTo is null)
        {
            foreach (var p in await PresenceAsync(current.JoinedMembers, 0, long.MaxValue)) presenceJson.Add(p);
            if (await ReceiptEventAsync(roomId, requester.UserId, 0, long.MaxValue) is { } receipt) receiptsJson.Add(receipt);
        }
        return new JsonObject
        {
            ["room_id"] = roomId,
            ["membership"] = membership,
            ["messages"] = new JsonObject
            {
                ["chunk"] = chunk,
                ["start"] = PaginationToken.Topological(page.Count > 0 ? page[^1].Topological : from),
                ["end"] = upTo is null ? notifier.Current.Serialize() : PaginationToken.Topological(from),
            },
            ["state"] = stateJson,
            ["presence"] = presenceJson,
            ["receipts"] = receiptsJson,
            ["visibility"] = await directory.IsPublishedAsync(roomId) == true ? "public" : "private",
            ["account_data"] = RoomAccountData((await accountData.GetRoomAsync(requester.UserId, roomId)).Select(item =>
                new JsonObject { ["type"] = item.Type, ["content"] = UserStreamSync.ParseJson(item.Content) })),
        };
    }

    private const string PushRulesType = "m.push_rules";

    /// <summary>
    /// A room's account data as Synapse's initialSync lists it: <c>m.tag</c> first, then the rest, one event per type
    /// (the store keeps only the latest content of each), and without <c>room_id</c>: the room entry holding them
    /// says which room they belong to (unlike /events, where each event names its room).
    /// </summary>
    private static JsonArray RoomAccountData(IEnumerable<JsonObject> events)
    {
        var result = new JsonArray();
        foreach (var e in events.OrderBy(e => e["type"]?.GetValue<string>() == AccountDataGrain.TagType ? 0 : 1))
            result.Add(e);
        return result;
    }

    private static IEnumerable<JsonObject> EventsOf(JsonNode? block) =>
        block?["events"] is JsonArray events ? events.OfType<JsonObject>().Select(e => (JsonObject)e.DeepClone()) : [];

    private async Task<IReadOnlyList<StoredEvent>> StateAsync(string roomId, long? upTo) =>
        upTo is null ? (await store.GetCurrentStateAsync(roomId)).Events : await store.GetStateAtTopologicalAsync(roomId, upTo.Value);

    private static IEnumerable<string> Keys(JsonNode? rooms) => rooms is JsonObject o ? o.Select(kv => kv.Key) : [];

    private static IEnumerable<(string Id, JsonNode Room)> Rooms(JsonNode? rooms) =>
        rooms is JsonObject o ? o.Where(kv => kv.Value is not null).Select(kv => (kv.Key, kv.Value!)) : [];

    // The events of a /sync block ({"events": [...]}), each naming its room as the legacy API does.
    private static JsonArray WithRoom(JsonNode? block, string? roomId)
    {
        var result = new JsonArray();
        AddWithRoom(result, block, roomId);
        return result;
    }

    private static void AddWithRoom(JsonArray target, JsonNode? block, string? roomId)
    {
        if (block?["events"] is not JsonArray events) return;
        foreach (var e in events.OfType<JsonObject>())
        {
            var copy = (JsonObject)e.DeepClone();
            if (roomId is not null) copy["room_id"] = roomId;
            target.Add(V1(copy));
        }
    }
}

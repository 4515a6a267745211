using Homeserver.Hosting;
using Homeserver.Storage;
using System.Text;
using System.Text.Json.Nodes;
using Homeserver.Errors;
using Homeserver.Matrix;
using Homeserver.PushRules;
using Homeserver.Streams;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Homeserver.Rooms;

/// <summary>
/// The writer of one room (see <see cref="IRoomGrain"/>). Holds the current state in memory, loaded on activation;
/// each write builds its events on a copy of that state and adopts the copy only once the append has committed, so a
/// rejected or failed write leaves the room as it was. Writes run one after another from a queue (depth and
/// prev_events follow one another); the grain is reentrant only so that calls can join the queue while a write
/// commits, and the messages, state events and membership changes queued meanwhile go out together in one append, each
/// built and checked on the state the one before it leaves, so a busy room is not limited to one event per commit.
/// </summary>
[Orleans.Concurrency.Reentrant]
[RoomPlacement]
public sealed class RoomGrain(RoomWriteStore store, IOptions<HomeserverOptions> options, ILogger<RoomGrain> logger,
    Profile.ProfileStore profiles, RoomDirectory.AliasStore aliases, RoomDirectory.PublicRoomStore directory, EventShards shards,
    Pushers.PusherDirectory pushers, BlockedRooms blocked)
    : Grain, IRoomGrain
{
    /// <summary>Spec: "The complete event MUST NOT be larger than 65536 bytes, when formatted with the federation
    /// event format, including any signatures, and encoded as Canonical JSON."</summary>
    public const int MaxEventBytes = 65_536;

    private const int MaxAttempts = 3;

    private string _roomId = "";
    private string? _version;
    private RoomState _state = new();
    private JsonObject? _last;
    private long _depth;
    private RoomTransactions _transactions = null!;

    private string ServerName => options.Value.ServerName;
    /// <summary>The room's events writer now (answers that wrote nothing name it with position 0).</summary>
    private int WriterIndex => shards.Current.WriterFor(_roomId);

    /// <summary>
    /// Events under construction, on the room's state. The state is copied only when an event changes it (most sends
    /// are messages, and copying the map of a large room costs more than building the event).
    /// </summary>
    private sealed class Pending(string version, RoomState state, JsonObject? last, long depth)
    {
        private RoomState? _copy;
        public readonly string Version = version;
        public RoomState State => _copy ?? state;
        public RoomState MutableState => _copy ??= state.Clone();
        public JsonObject? Last = last;
        public long Depth = depth;
        public readonly List<StreamRow> Rows = [];
        /// <summary>The membership notices of <see cref="Rows"/>' events, appended after all of them: a run of events,
        /// then a run of notices, is what the persisters can write in a few multi-row statements (they take runs of
        /// one kind), and the append commits them together.</summary>
        public readonly List<StreamRow> Notices = [];
        public StreamRow[] AllRows() => [.. Rows, .. Notices];
        /// <summary>The rows delete the room (<see cref="PurgeAsync"/>): once they commit the room is unknown.</summary>
        public bool Purges;
        /// <summary>Transactions the rows commit: the row's index gives the event's position.</summary>
        public readonly List<(string User, string Device, string TxnId, string EventId, int Row)> Transactions = [];
    }

    public override async Task OnActivateAsync(CancellationToken ct)
    {
        _roomId = this.GetPrimaryKeyString();
        _transactions = new RoomTransactions(store, _roomId, options.Value.TransactionIdLifetime, TimeProvider.System);
        await shards.EnsureLoadedAsync();
        await StorageOutage.DuringActivationAsync(ReloadAsync);
        await StorageOutage.DuringActivationAsync(pushers.EnsureLoadedAsync);
    }

    public async Task<RoomWriteResult> CreateAsync(CreateRoomCommand command)
    {
        if (_version is not null) throw new MatrixException(ErrorCodes.RoomInUse, "Room already exists", 400);
        if (!RoomVersions.IsKnown(command.RoomVersion))
            throw new MatrixException(ErrorCodes.UnsupportedRoomVersion, $"Unsupported room version '{command.RoomVersion}'", 400);

        string? alias = null;
        if (command.AliasLocalpart is not null)
        {
            alias = $"#{command.AliasLocalpart}:{ServerName}";
            if (!Identifiers.IsValidRoomAlias(alias) || command.AliasLocalpart.Any(c => char.IsWhiteSpace(c) || c is ':' or '#'))
                throw MatrixException.InvalidParam("Invalid room_alias_name");
            // Claimed before the room exists: uniqueness across rooms cannot be decided by one room's grain.
            if (!await aliases.CreateAsync(alias, _roomId, command.Creator))
                throw new MatrixException(ErrorCodes.RoomInUse, "Room alias already taken", 400);
        }

        try
        {
            var drafts = RoomCreationPlan.Build(command, alias);
            foreach (var draft in drafts.Where(d => d.Type == "m.room.member" && d.StateKey is not null && IsLocal(d.StateKey)))
                await profiles.AddToMembershipAsync(draft.Content, draft.StateKey!);
            return await SubmitAsync(command.RoomVersion, WriteBatching.Alone, p =>
            {
                foreach (var draft in drafts)
                {
                    var (ev, json) = Build(p, draft);
                    var created = draft.Type == "m.room.create"
                        ? new RoomCreatedRow(command.RoomVersion, command.Creator, command.IsPublic)
                        : null;
                    Adopt(p, ev, Row(ev, json) with { Room = created });
                }
                return Task.FromResult<RoomWriteResult?>(null);
            });
        }
        catch
        {
            if (alias is not null && _version is null) await aliases.DeleteAsync(alias, _roomId);
            throw;
        }
    }

    public async Task<RoomWriteResult> SendAsync(SendEventCommand command)
    {
        var content = CanonicalJson.ParseObject(command.ContentJson);
        if (command.Type == "m.room.tombstone" && command.StateKey == "" && RoomState.GetString(content, "replacement_room") == _roomId)
            throw MatrixException.BadJson("A tombstone cannot point to the room it ends");
        if (command.Type == "m.room.canonical_alias" && command.StateKey == "")
            await aliases.ValidateCanonicalAliasAsync(_roomId, content, _state.Get("m.room.canonical_alias", "")?["content"] as JsonObject);
        var result = await SubmitAsync(null, command.StateKey is null ? WriteBatching.Message(command.Sender, command.DeviceId, command.TxnId)
            : StateBatching(command.Sender, command.DeviceId, command.TxnId), async p =>
        {
            if (await FindTransactionAsync(command.Sender, command.DeviceId, command.TxnId) is { } done) return done;
            // Re-sending the state a room already has changes nothing (Synapse answers with the existing event).
            if (command.StateKey is not null && p.State.Get(command.Type, command.StateKey) is { } current
                && RoomState.GetString(current, "sender") == command.Sender
                && current["content"] is JsonObject currentContent
                && CanonicalJson.Encode(currentContent) == CanonicalJson.Encode(content))
                return new RoomWriteResult(RoomState.GetString(current, "event_id"), WriterIndex, 0);

            var (ev, json) = Build(p, new EventDraft(command.Sender, command.Type, command.StateKey, content));
            Adopt(p, ev, Row(ev, json) with { DeviceId = command.DeviceId, TxnId = command.DeviceId is null ? null : command.TxnId });
            return null;
        });
        if (command.Type == "m.room.guest_access" && command.StateKey == "" && RoomState.GetString(content, "guest_access") != "can_join")
            await RemoveGuestsAsync();
        return result;
    }

    public Task<RoomWriteResult> RemoveCanonicalAliasAsync(string alias, string userId) =>
        SubmitAsync(null, StateBatching(userId, null, null), p =>
        {
            if (p.State.Get("m.room.canonical_alias", "")?["content"] is not JsonObject current
                || CanonicalAliasWithout(current, alias) is not { } content)
                return Task.FromResult<RoomWriteResult?>(new RoomWriteResult(null, WriterIndex, 0));
            var (ev, json) = Build(p, new EventDraft(userId, "m.room.canonical_alias", "", content));
            Adopt(p, ev, Row(ev, json));
            return Task.FromResult<RoomWriteResult?>(null);
        });

    /// <summary>The canonical alias content with <paramref name="alias"/> left out, or null when it names it nowhere.
    /// Only removes names, so what is left was valid before and needs no new check against the alias table.</summary>
    private static JsonObject? CanonicalAliasWithout(JsonObject current, string alias)
    {
        var content = (JsonObject)current.DeepClone();
        var changed = false;
        if (content["alias"] is JsonValue main && main.TryGetValue<string>(out var named) && named == alias)
        {
            content.Remove("alias");
            changed = true;
        }
        if (content["alt_aliases"] is JsonArray alt)
        {
            var kept = new JsonArray();
            foreach (var a in alt)
            {
                if (a is JsonValue v && v.TryGetValue<string>(out var s) && s == alias) changed = true;
                else kept.Add(a?.DeepClone());
            }
            content["alt_aliases"] = kept;
        }
        return changed ? content : null;
    }

    /// <summary>State a room upgrade carries over (Synapse's list): how the room is joined, read and shown.</summary>
    private static readonly string[] UpgradedStateTypes =
    [
        "m.room.join_rules", "m.room.history_visibility", "m.room.guest_access", "m.room.name", "m.room.topic",
        "m.room.avatar", "m.room.encryption", "m.room.server_acl", "m.room.related_groups",
    ];

    public async Task<RoomUpgradeResult> UpgradeAsync(RoomUpgradeCommand command)
    {
        if (_version is null) throw MatrixException.NotFound("Unknown room");
        if (!RoomVersions.IsKnown(command.NewVersion))
            throw new MatrixException(ErrorCodes.UnsupportedRoomVersion, $"Unsupported room version '{command.NewVersion}'", 400);
        if (_state.Membership(command.Sender) != "join") throw MatrixException.Forbidden("You are not in the room");
        var levels = _state.PowerLevels;
        if (levels.GetUserLevel(command.Sender) < levels.GetEventLevel("m.room.tombstone", isState: true))
            throw MatrixException.Forbidden("You do not have the power to upgrade this room");

        var writes = new List<RoomWriteResult>();
        // The tombstone first: the new room's predecessor names it.
        var tombstone = await SendAsync(new SendEventCommand(command.Sender, command.DeviceId, null, "m.room.tombstone", "",
            new JsonObject { ["body"] = "This room has been replaced", ["replacement_room"] = command.NewRoomId }.ToJsonString()));
        writes.Add(tombstone);

        var copied = new List<string>();
        foreach (var type in UpgradedStateTypes)
            if (_state.Get(type, "") is { } ev && ev["content"] is JsonObject c)
                copied.Add(new JsonObject { ["type"] = type, ["state_key"] = "", ["content"] = c.DeepClone() }.ToJsonString());
        // A room without guest access written has it forbidden; the new room says so explicitly, so that no preset of
        // its creation can open it to guests.
        if (_state.Get("m.room.guest_access", "") is null)
            copied.Add(new JsonObject { ["type"] = "m.room.guest_access", ["state_key"] = "", ["content"] = new JsonObject { ["guest_access"] = "forbidden" } }.ToJsonString());
        var creation = new JsonObject { ["predecessor"] = new JsonObject { ["room_id"] = _roomId, ["event_id"] = tombstone.EventId } };
        if (_state.CreateEvent?["content"] is JsonObject oldCreate && oldCreate["m.federate"] is { } federate) creation["m.federate"] = federate.DeepClone();
        var powerLevels = _state.Get("m.room.power_levels", "")?["content"] as JsonObject;
        var published = await directory.IsPublishedAsync(_roomId) == true;
        var joinRule = _state.JoinRule;
        var newRoom = GrainFactory.GetGrain<IRoomGrain>(command.NewRoomId);
        writes.Add(await newRoom.CreateAsync(new CreateRoomCommand(
            command.Sender, command.DeviceId, command.NewVersion, joinRule == "public" ? "public_chat" : "private_chat", published,
            null, null, null, [], false, creation.ToJsonString(), powerLevels?.ToJsonString(), copied.ToArray())));

        foreach (var banned in _state.Members("ban"))
            writes.Add(await newRoom.SetMembershipAsync(new MembershipCommand(command.Sender, banned, MembershipAction.Ban, null)));

        // Local aliases now lead to the new room, and so does the canonical one.
        foreach (var alias in await aliases.GetAliasesForRoomAsync(_roomId))
        {
            var owner = (await aliases.GetAsync(alias))?.Creator ?? command.Sender;
            if (await aliases.DeleteAsync(alias, _roomId)) await aliases.CreateAsync(alias, command.NewRoomId, owner);
        }
        if (_state.Get("m.room.canonical_alias", "")?["content"] is JsonObject canonical && canonical.Count > 0)
        {
            writes.Add(await newRoom.SendAsync(new SendEventCommand(command.Sender, command.DeviceId, null, "m.room.canonical_alias", "",
                canonical.ToJsonString())));
            writes.Add(await SendAsync(new SendEventCommand(command.Sender, command.DeviceId, null, "m.room.canonical_alias", "", "{}")));
        }
        if (published)
        {
            await directory.SetPublishedAsync(command.NewRoomId, true);
            await directory.SetPublishedAsync(_roomId, false);
        }

        // The old room: ordinary members can no longer talk or invite (Synapse's rule: at least 50, and above users_default).
        var restricted = (JsonObject?)powerLevels?.DeepClone() ?? new JsonObject();
        var needed = Math.Max(50, levels.UsersDefault + 1);
        var changed = false;
        foreach (var key in new[] { "events_default", "invite" })
        {
            if (levels.GetNamedLevel(key) >= needed) continue;
            restricted[key] = needed;
            changed = true;
        }
        if (changed)
            writes.Add(await SendAsync(new SendEventCommand(command.Sender, command.DeviceId, null, "m.room.power_levels", "", restricted.ToJsonString())));
        var (pushRules, accountData) = await CopyUserStateAsync(command.Sender, _roomId, command.NewRoomId);
        writes.Add(new RoomWriteResult(null, WriterIndex, 0, pushRules, accountData));
        return new RoomUpgradeResult(command.NewRoomId, writes.ToArray());
    }

    /// <summary>Guest access revoked: every guest still joined leaves (spec "Guest access"), as Synapse makes them.</summary>
    private async Task RemoveGuestsAsync()
    {
        var joined = _state.Members().ToList();
        if (joined.Count == 0) return;
        foreach (var guest in await store.GuestsAmongAsync(joined))
        {
            try
            {
                await SetMembershipAsync(new MembershipCommand(guest, guest, MembershipAction.Leave, "Guest access revoked"));
            }
            catch (MatrixException e)
            {
                logger.LogWarning("Guest {Guest} could not be removed from {Room} after guest access was revoked: {Error}", guest, _roomId, e.Message);
            }
        }
    }

    public async Task<RoomWriteResult> SetMembershipAsync(MembershipCommand command)
    {
        // Asked before the room is, as Synapse does: a blocked room that was purged is refused, not unknown.
        if (command.Action is MembershipAction.Join or MembershipAction.Invite && await blocked.BlockedByAsync(_roomId) is not null)
            throw new MatrixException(ErrorCodes.Unknown, BlockedRooms.Message, 403);
        var profile = new JsonObject();
        if (command.Action is MembershipAction.Join or MembershipAction.Invite && IsLocal(command.Target))
            await profiles.AddToMembershipAsync(profile, command.Target);
        var result = await WriteMembershipAsync(command, profile);
        if (command.Action != MembershipAction.Join || result.Position <= 0 || !IsLocal(command.Target)) return result;
        if (_state.CreateEvent?["content"]?["predecessor"] is not JsonObject predecessor
            || RoomState.GetString(predecessor, "room_id") is not { } oldRoomId)
            return result;
        var (pushRules, accountData) = await CopyUserStateAsync(command.Target, oldRoomId, _roomId);
        return result with { PushRulesPosition = pushRules, AccountDataPosition = accountData };
    }

    /// <summary>What a user had for a room follows it through an upgrade (as in Synapse: for the upgrader at once, for
    /// everyone else when they join): push rules naming the room, its tags, its place in <c>m.direct</c>. The upgrade
    /// or join has committed: a failure here is logged, not the caller's.</summary>
    private async Task<(long PushRules, long AccountData)> CopyUserStateAsync(string userId, string oldRoomId, string newRoomId)
    {
        try
        {
            var pushRules = GrainFactory.GetGrain<IPushRulesGrain>(userId).CopyRoomRulesAsync(oldRoomId, newRoomId);
            var accountData = GrainFactory.GetGrain<AccountData.IAccountDataGrain>(userId).CopyRoomStateAsync(oldRoomId, newRoomId);
            return (await pushRules, await accountData);
        }
        catch (Exception e) when (e is MatrixException or StreamUnavailableException)
        {
            logger.LogWarning("State of {User} for {OldRoom} was not copied to {Room}: {Error}", userId, oldRoomId, newRoomId, e.Message);
            return (0, 0);
        }
    }

    private async Task<RoomWriteResult> WriteMembershipAsync(MembershipCommand command, JsonObject profile)
    {
        return await SubmitAsync(null, StateBatching(command.Sender, null, null), p =>
        {
            var current = p.State.Membership(command.Target);
            string membership;
            switch (command.Action)
            {
                case MembershipAction.Join:
                    if (command.Sender != command.Target) throw MatrixException.Forbidden("Cannot join on behalf of another user");
                    if (command.SenderIsGuest && (p.State.Get("m.room.guest_access", "") is not { } ga
                                                  || ga["content"] is not JsonObject gac || RoomState.GetString(gac, "guest_access") != "can_join"))
                        throw new MatrixException(ErrorCodes.GuestAccessForbidden, "Guest access is not allowed in this room", 403);
                    if (current == "join" && p.State.GetEventId("m.room.member", command.Target) is { } joined)
                        return Task.FromResult<RoomWriteResult?>(new RoomWriteResult(joined, WriterIndex, 0));
                    membership = "join";
                    break;
                case MembershipAction.Invite:
                    membership = "invite";
                    break;
                case MembershipAction.Leave:
                    if (command.Sender != command.Target) throw MatrixException.Forbidden("Cannot leave on behalf of another user");
                    membership = "leave";
                    break;
                case MembershipAction.Kick:
                    if (current is not ("join" or "invite" or "knock"))
                        throw MatrixException.Forbidden($"{command.Target} is not in the room");
                    membership = "leave";
                    break;
                case MembershipAction.Ban:
                    membership = "ban";
                    break;
                case MembershipAction.Unban:
                    if (current != "ban") throw MatrixException.Forbidden($"{command.Target} is not banned");
                    membership = "leave";
                    break;
                default:
                    throw MatrixException.InvalidParam($"Unknown membership action {command.Action}");
            }
            // The client's own keys first; what the server decides (membership, reason, the profile unless the
            // client named its own) goes over them.
            var content = command.ExtraContentJson is null ? new JsonObject() : (JsonObject)JsonNode.Parse(command.ExtraContentJson)!;
            content["membership"] = membership;
            if (command.Reason is not null) content["reason"] = command.Reason;
            if (command.IsDirect && membership == "invite") content["is_direct"] = true;
            if (membership is "join" or "invite")
                foreach (var (key, value) in profile)
                    if (!content.ContainsKey(key)) content[key] = value?.DeepClone();
            var (ev, json) = Build(p, new EventDraft(command.Sender, "m.room.member", command.Target, content));
            Adopt(p, ev, Row(ev, json));
            return Task.FromResult<RoomWriteResult?>(null);
        });
    }

    public async Task<RoomWriteResult> RedactAsync(RedactCommand command)
    {
        return await SubmitAsync(null, StateBatching(command.Sender, command.DeviceId, command.TxnId), async p =>
        {
            if (await FindTransactionAsync(command.Sender, command.DeviceId, command.TxnId) is { } done) return done;
            var (room, target, alreadyRedacted) = await store.GetEventAsync(command.EventId)
                                                  ?? throw MatrixException.NotFound("Event not found");
            // Synapse answers 400 too: the event exists, but a redaction can only name an event of its own room.
            if (room != _roomId) throw MatrixException.InvalidParam("Cannot redact an event of another room");

            var content = new JsonObject();
            if (command.Reason is not null) content["reason"] = command.Reason;
            // v11 moved "redacts" into content (MSC2174); the top-level key stays for older clients.
            if (RoomVersions.Number(p.Version) >= 11) content["redacts"] = command.EventId;
            var (ev, json) = Build(p, new EventDraft(command.Sender, "m.room.redaction", null, content), redacts: command.EventId);
            if (!EventAuth.CanRedact(ev, target, p.State))
                throw MatrixException.Forbidden("You don't have permission to redact this event");

            var row = Row(ev, json) with
            {
                DeviceId = command.DeviceId,
                TxnId = command.DeviceId is null ? null : command.TxnId,
                Redacts = command.EventId,
            };
            if (!alreadyRedacted)
            {
                var redacted = Redaction.Redact(target, p.Version);
                redacted["unsigned"] = new JsonObject { ["redacted_because"] = RoomEventFormat.ToClient(ev) };
                var targetType = RoomState.GetString(target, "type");
                var targetKey = RoomState.GetString(target, "state_key");
                // A redacted state event still counts, with its redacted content (e.g. power levels fall to defaults).
                if (targetType is not null && targetKey is not null
                    && p.State.Get(targetType, targetKey) is { } currentState
                    && RoomState.GetString(currentState, "event_id") == command.EventId)
                    p.MutableState.Set(redacted);
                row = row with
                {
                    RedactedJson = CanonicalJson.Encode(redacted),
                    RedactedBecause = ev.ToJsonString(),
                    RedactsState = targetKey is not null,
                    RedactsRelationTo = EventRelation.Of(target["content"] as JsonObject)?.ParentId,
                };
            }
            Adopt(p, ev, row);
            return null;
        });
    }

    public async Task<RoomWriteResult> ForgetAsync(string userId)
    {
        RequireRoom();
        var membership = _state.Membership(userId);
        if (membership is null) throw MatrixException.Forbidden("You are not a member of this room");
        if (membership is "join" or "invite" or "knock")
            throw new MatrixException(ErrorCodes.Unknown, "You must leave the room before forgetting it", 400);
        var result = await AppendToRoomWriterAsync([RoomStreamRows.Forget(new ForgetRow(_roomId, userId))]);
        return new RoomWriteResult(null, result.Writer, result.LastPosition);
    }

    public Task<RoomWriteResult> PurgeAsync(bool force) => SubmitAsync(null, WriteBatching.Alone, p =>
    {
        if (!force && p.State.Members().Any(IsLocal))
            throw new MatrixException(ErrorCodes.Unknown, "Users are still joined to this room", 400);
        var users = p.State.Keys.Where(k => k.Type == "m.room.member").Select(k => k.StateKey).ToArray();
        p.Rows.Add(RoomStreamRows.Purge(new RoomPurgeRow(_roomId, users)));
        p.Purges = true;
        return Task.FromResult<RoomWriteResult?>(null);
    });

    /// <summary>
    /// Appends to the room's writer under the shard map this silo knows. A writer that refuses the append because the
    /// map changed (or a reshard is sealing it) wrote nothing: once the new map is out, the same rows go to the room's
    /// writer under it. The room's writes are serial, so its events stay in order across the move.
    /// </summary>
    private async Task<AppendResult> AppendToRoomWriterAsync(StreamRow[] rows)
    {
        for (var attempt = 0; ; attempt++)
        {
            var map = shards.Current;
            var writer = GrainFactory.GetGrain<IStreamWriterGrain>(StreamNames.WriterKey(StreamNames.Events, map.WriterFor(_roomId)));
            try { return await writer.AppendRoutedAsync(rows, map.Generation); }
            catch (EventShardsChangedException e) when (attempt < 50)
            {
                var next = await shards.WaitForRoutingAsync(Math.Max(e.Generation + (e.Sealing ? 1 : 0), map.Generation));
                // The map is newer than the writer: the grain running the reshard is still opening the writers.
                if (next.Generation == map.Generation) await Task.Delay(TimeSpan.FromMilliseconds(10 * (attempt + 1)));
            }
        }
    }

    private bool IsLocal(string userId) => Identifiers.ServerNameOf(userId) == ServerName;

    private string RequireRoom() => _version ?? throw MatrixException.NotFound("Unknown room");

    private async Task<RoomWriteResult?> FindTransactionAsync(string sender, string? deviceId, string? txnId)
    {
        if (deviceId is null || txnId is null) return null;
        return await _transactions.FindAsync(sender, deviceId, txnId) is { } found
            ? new RoomWriteResult(found.EventId, shards.Current.WriterAt(_roomId, found.Position), found.Position)
            : null;
    }

    private const int MaxBatchWrites = 256;

    /// <summary>
    /// Whether a write may share an append with the writes queued beside it, and its transaction (sender, device and
    /// transaction id, or null: two writes of one transaction never share an append, so the second finds the first
    /// committed).
    /// </summary>
    private readonly record struct WriteBatching(bool Batches, string? TransactionKey)
    {
        /// <summary>Creating or purging the room: every later write depends on it having committed.</summary>
        public static readonly WriteBatching Alone = new(false, null);

        public static WriteBatching Message(string sender, string? deviceId, string? txnId) => new(true, KeyOf(sender, deviceId, txnId));

        public static string? KeyOf(string sender, string? deviceId, string? txnId) =>
            deviceId is null || txnId is null ? null : $"{sender}|{deviceId}|{txnId}";
    }

    /// <summary>A state event, membership change or redaction: batched unless <see cref="RoomOptions.BatchStateWrites"/>
    /// is off (then each goes out alone, as before).</summary>
    private WriteBatching StateBatching(string sender, string? deviceId, string? txnId) =>
        new(options.Value.Rooms.BatchStateWrites, WriteBatching.KeyOf(sender, deviceId, txnId));

    /// <summary>A queued write.</summary>
    private sealed class Write(string? createVersion, WriteBatching batching, Func<Pending, Task<RoomWriteResult?>> build)
    {
        public readonly string? CreateVersion = createVersion;
        public readonly WriteBatching Batching = batching;
        public readonly Func<Pending, Task<RoomWriteResult?>> Build = build;
        public readonly TaskCompletionSource<RoomWriteResult> Done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private readonly Queue<Write> _writes = new();
    private bool _writing;

    /// <summary>
    /// Queues a write and runs the queue if nothing is running it. <paramref name="build"/> adds rows to the pending
    /// state, or returns a result to answer without writing (a repeated transaction, a no-op). The room's version is
    /// read when the write runs (<paramref name="createVersion"/> for the create itself), so a call that arrives while
    /// the room is being created waits for it instead of finding no room.
    /// </summary>
    private Task<RoomWriteResult> SubmitAsync(string? createVersion, WriteBatching batching, Func<Pending, Task<RoomWriteResult?>> build)
    {
        var write = new Write(createVersion, batching, build);
        _writes.Enqueue(write);
        if (!_writing)
        {
            _writing = true;
            _ = DrainAsync();
        }
        return write.Done.Task;
    }

    private async Task DrainAsync()
    {
        try
        {
            while (_writes.Count > 0)
            {
                var batch = new List<Write> { _writes.Dequeue() };
                if (batch[0].Batching.Batches)
                {
                    var keys = new HashSet<string>();
                    if (batch[0].Batching.TransactionKey is { } first) keys.Add(first);
                    while (batch.Count < MaxBatchWrites && _writes.TryPeek(out var next) && next.Batching.Batches
                           && (next.Batching.TransactionKey is not { } key || keys.Add(key)))
                        batch.Add(_writes.Dequeue());
                }
                try { await RunAsync(batch); }
                catch (Exception e)
                {
                    // Reloading after a failed append failed too (the database is away): these writers hear of it.
                    foreach (var w in batch) w.Done.TrySetException(e);
                }
            }
        }
        finally { _writing = false; }
    }

    /// <summary>
    /// Builds the writes in order on a copy of the state (each on the state the one before it leaves, so a power level
    /// changed early in a batch decides the auth of the events after it), appends their rows in one call, and adopts
    /// the copy; answers each write's caller only once the append has committed. A write whose build throws fails
    /// alone (builds check before they add rows; one that threw after adding some has the batch built again without
    /// it). A write answered without rows (a repeated join, state re-sent) may have read an event of this very batch,
    /// so it is answered with the commit too, and fails with it. When the append fails because another activation
    /// wrote first (the (room, depth) index, or a fenced writer), the state is reloaded and the writes rebuilt on it.
    /// </summary>
    private async Task RunAsync(List<Write> writes)
    {
        for (var attempt = 1; ; )
        {
            writes = writes.Where(w => !w.Done.Task.IsCompleted).ToList();
            if (writes.Count == 0) return;
            var version = writes[0].CreateVersion ?? _version;
            if (version is null)
            {
                foreach (var w in writes) w.Done.TrySetException(MatrixException.NotFound("Unknown room"));
                return;
            }
            var pending = new Pending(version, _state, _last, _depth);
            // A write's answer carries the position of its last row: its event's, or its membership notice's.
            var built = new List<(Write Write, string EventId, int LastRow, int LastNotice)>();
            var answered = new List<(Write Write, RoomWriteResult Result)>();
            var halfBuilt = false;
            foreach (var write in writes)
            {
                var rowsBefore = pending.Rows.Count;
                var noticesBefore = pending.Notices.Count;
                try
                {
                    var early = await write.Build(pending);
                    var result = early ?? new RoomWriteResult(null, WriterIndex, 0);
                    if (pending.Rows.Count > rowsBefore)
                        built.Add((write, RoomState.GetString(pending.Last!, "event_id")!, pending.Rows.Count - 1,
                            pending.Notices.Count > noticesBefore ? pending.Notices.Count - 1 : -1));
                    else if (rowsBefore == 0) write.Done.TrySetResult(result);
                    else answered.Add((write, result));
                }
                catch (Exception e)
                {
                    write.Done.TrySetException(e);
                    if (pending.Rows.Count == rowsBefore && pending.Notices.Count == noticesBefore) continue;
                    halfBuilt = true;
                    break;
                }
            }
            if (halfBuilt) continue;
            if (built.Count == 0) return;

            try
            {
                var result = await AppendToRoomWriterAsync(pending.AllRows());
                var stateBefore = _state;
                _version = version;
                _state = pending.State;
                _last = pending.Last;
                _depth = pending.Depth;
                foreach (var (user, device, txnId, eventId, row) in pending.Transactions)
                    _transactions.Committed(user, device, txnId, eventId, result.Positions[row]);
                foreach (var (write, eventId, lastRow, lastNotice) in built)
                    write.Done.TrySetResult(new RoomWriteResult(eventId, result.Writer,
                        result.Positions[lastNotice < 0 ? lastRow : pending.Rows.Count + lastNotice]));
                foreach (var (write, early) in answered) write.Done.TrySetResult(early);
                if (pending.Purges)
                {
                    // Writes queued behind the purge find no room; a later activation loads none.
                    _version = null;
                    _state = new RoomState();
                    _last = null;
                    _depth = 0;
                    _transactions.Clear();
                    DeactivateOnIdle();
                    return;
                }
                WakePushers(stateBefore, result.Positions.Max());
                return;
            }
            catch (Exception e) when (e is not MatrixException)
            {
                var depthBefore = _depth;
                await ReloadAsync();
                var conflict = _depth != depthBefore;
                logger.LogWarning("Append to room {Room} failed (attempt {Attempt}, conflict {Conflict}): {Message}",
                    _roomId, attempt, conflict, e.Message);
                // Someone else wrote this room: let the directory settle on one activation for later calls.
                if (conflict) DeactivateOnIdle();
                if (attempt++ < MaxAttempts && (conflict || e is StreamWriterFencedException)) continue;
                // The writer's silo died (or the database is down): the exception goes to the caller as it is, so
                // that the front end retries an idempotent send (its transaction id makes the retry find an event
                // that did commit) or answers 503.
                Exception failure = e switch
                {
                    _ when SiloLossRetryFilter.IsSiloLoss(e) => e,
                    _ when StorageOutage.Is(e) => StorageOutage.Unavailable(e),
                    StreamUnavailableException => new MatrixException(ErrorCodes.Unknown, "The room's storage is unavailable; try again", 503),
                    _ => new MatrixException(ErrorCodes.Unknown, "Could not store the event; try again", 500),
                };
                foreach (var w in writes) w.Done.TrySetException(failure);
                return;
            }
            catch (MatrixException e)
            {
                foreach (var w in writes) w.Done.TrySetException(e);
                return;
            }
        }
    }

    /// <summary>
    /// After a commit: the members with pushers (and anyone just invited) may have something to be pushed. Their
    /// grains are woken one-way; each reads what is new for it from its own position, so a lost wake-up only waits
    /// for the next one or for the sweep (<see cref="Pushers.PusherSweep"/>).
    /// </summary>
    private void WakePushers(RoomState before, long position)
    {
        if (!pushers.AnyPushers) return;
        var after = _state;
        bool Concerned(string userId) => after.Membership(userId) switch
        {
            "join" => true,
            "invite" => before.Membership(userId) != "invite",
            _ => false,
        };
        foreach (var userId in pushers.Select(Concerned, after.Members().Concat(after.Members("invite")), after.Count))
            _ = GrainFactory.GetGrain<Pushers.IPushersGrain>(userId).WakeAsync(position);
    }

    /// <summary>
    /// Builds, checks and identifies one event on top of <paramref name="p"/> (without changing it); returns it with
    /// its canonical JSON as stored, encoded once.
    /// </summary>
    private (JsonObject Event, string Json) Build(Pending p, EventDraft draft, string? redacts = null)
    {
        var legacy = RoomVersions.Number(p.Version) < 3;
        var ev = new JsonObject
        {
            ["room_id"] = _roomId,
            ["sender"] = draft.Sender,
            ["type"] = draft.Type,
            ["content"] = draft.Content.DeepClone(),
            ["origin_server_ts"] = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
            ["depth"] = p.Depth + 1,
        };
        if (draft.StateKey is not null) ev["state_key"] = draft.StateKey;
        if (redacts is not null) ev["redacts"] = redacts;
        if (legacy) ev["event_id"] = $"${Identifiers.RandomString(24)}:{ServerName}";

        var prev = p.Last is null ? [] : new[] { p.Last };
        var auth = AuthEvents(p.State, draft);
        // The auth rules read prev_events as plain ids, so check before v1/v2 turn them into [id, hashes] pairs.
        ev["prev_events"] = new JsonArray(prev.Select(e => (JsonNode)JsonValue.Create(RoomState.GetString(e, "event_id"))!).ToArray());
        ev["auth_events"] = new JsonArray(auth.Select(k => (JsonNode)JsonValue.Create(p.State.GetEventId(k.Type, k.StateKey))!).ToArray());
        EventAuth.Check(ev, p.State);
        if (legacy)
        {
            ev["prev_events"] = new JsonArray(prev.Select(e => LegacyReference(e, p.Version)).ToArray());
            ev["auth_events"] = new JsonArray(auth.Select(k => LegacyReference(p.State.Get(k.Type, k.StateKey)!, p.Version)).ToArray());
        }

        EventHashing.AddHashes(ev);
        if (!legacy) ev["event_id"] = EventHashing.ComputeEventId(ev, p.Version);
        // The event has no "unsigned" yet, so this is also the size check's encoding.
        var json = CanonicalJson.Encode(ev);
        if (Encoding.UTF8.GetByteCount(json) > MaxEventBytes)
            throw new MatrixException(ErrorCodes.TooLarge, "Event too large", 413);

        if (draft.StateKey is not null && p.State.Get(draft.Type, draft.StateKey) is { } replaced)
        {
            ev["unsigned"] = new JsonObject
            {
                ["replaces_state"] = RoomState.GetString(replaced, "event_id"),
                ["prev_content"] = replaced["content"]?.DeepClone(),
                ["prev_sender"] = RoomState.GetString(replaced, "sender"),
            };
            json = CanonicalJson.Encode(ev);
        }
        return (ev, json);
    }

    // Spec "auth events selection": create, power levels, the sender's membership; for membership events also the
    // target's membership and the join rules. As (type, state key): a member event is read only for its id.
    private static List<(string Type, string StateKey)> AuthEvents(RoomState state, EventDraft draft)
    {
        var auth = new List<(string, string)>();
        if (draft.Type == "m.room.create") return auth;
        void Add(string type, string key)
        {
            if (state.GetEventId(type, key) is not null && !auth.Contains((type, key))) auth.Add((type, key));
        }
        Add("m.room.create", "");
        Add("m.room.power_levels", "");
        Add("m.room.member", draft.Sender);
        if (draft.Type == "m.room.member" && draft.StateKey is not null)
        {
            Add("m.room.member", draft.StateKey);
            if (RoomState.GetString(draft.Content, "membership") is "join" or "invite" or "knock") Add("m.room.join_rules", "");
        }
        return auth;
    }

    private static JsonNode LegacyReference(JsonObject ev, string version) => new JsonArray(
        JsonValue.Create(RoomState.GetString(ev, "event_id")),
        new JsonObject { ["sha256"] = EventHashing.ToUnpaddedBase64(EventHashing.ComputeReferenceHash(ev, version)) });

    private RoomEventRow Row(JsonObject ev, string json)
    {
        var type = RoomState.GetString(ev, "type")!;
        var stateKey = RoomState.GetString(ev, "state_key");
        return new RoomEventRow(
            RoomState.GetString(ev, "event_id")!, _roomId, type, stateKey, RoomState.GetString(ev, "sender")!,
            ev["origin_server_ts"]!.GetValue<long>(), ev["depth"]!.GetValue<long>(), json,
            Membership: type == "m.room.member" && ev["content"] is JsonObject c ? RoomState.GetString(c, "membership") : null,
            // A redaction relates to nothing even if a client put m.relates_to in it.
            Relation: type == "m.room.redaction" ? null : EventRelation.Of(ev["content"] as JsonObject),
            Search: options.Value.Search.IndexEvents ? EventSearchText.Of(type, stateKey, ev["content"] as JsonObject) : null);
    }

    /// <summary>Makes a built event part of <paramref name="p"/>: its state, its depth, its rows.</summary>
    private static void Adopt(Pending p, JsonObject ev, RoomEventRow row)
    {
        if (row.StateKey is not null) p.MutableState.Set(ev, row.Json);
        p.Last = ev;
        p.Depth = row.Topological;
        if (row.DeviceId is not null && row.TxnId is not null)
            p.Transactions.Add((row.Sender, row.DeviceId, row.TxnId, row.EventId, p.Rows.Count));
        p.Rows.Add(RoomStreamRows.Event(row));
        if (row.Membership is not null && row.StateKey is not null)
            p.Notices.Add(RoomStreamRows.MemberNotice(new MemberNoticeRow(row.RoomId, row.StateKey, row.Membership, row.EventId)));
    }

    private async Task ReloadAsync()
    {
        _transactions.Clear();
        var loaded = await store.LoadAsync(_roomId);
        _version = loaded.RoomVersion;
        _state = RoomState.FromJson(loaded.State);
        _last = loaded.LastEvent;
        _depth = loaded.Depth;
    }
}

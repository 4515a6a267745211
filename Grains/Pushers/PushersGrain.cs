using System.Text.Json.Nodes;
using Homeserver.Errors;
using Homeserver.Matrix;
using Homeserver.PushRules;
using Homeserver.Receipts;
using Homeserver.Rooms;
using Homeserver.Streams;
using Microsoft.Extensions.Logging;

namespace Homeserver.Pushers;

/// <summary>
/// One user's pushers (see <see cref="IPushersGrain"/>). Delivery reads, per pusher, the events after its stored
/// position up to what every events writer has persisted and this silo's reader applied (the stream's minimum: nothing
/// below it can still commit), evaluates the user's push rules on each, sends what notifies, and moves the position
/// forward in the database after each push (fenced on the position it read, so two activations never both push).
/// A gateway that fails is retried with a growing delay; an event it fails for an hour is given up, as Synapse does.
/// </summary>
public sealed class PushersGrain(
    PusherStore store, PusherDirectory directory, RoomEventStore rooms, PushRulesStore pushRules, UnreadCounts unread,
    StreamNotifier notifier, PushGatewayClient gateway, ILogger<PushersGrain> logger) : Grain, IPushersGrain
{
    public const string HttpPushPath = "/_matrix/push/v1/notify";
    private const int Batch = 100;
    private const int MaxAppIdLength = 64, MaxPushKeyLength = 512;
    private static readonly TimeSpan MaxWaitForStream = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan MaxRetryDelay = TimeSpan.FromMinutes(10);
    private const int GiveUpAfterAttempts = 12;

    private string _userId = "";
    private long _wanted;
    private readonly Dictionary<(string AppId, string PushKey), (long Position, int Attempts)> _failing = new();
    private IGrainTimer? _retry;

    public override Task OnActivateAsync(CancellationToken ct)
    {
        _userId = this.GetPrimaryKeyString();
        return Task.CompletedTask;
    }

    public async Task SetAsync(PusherSettings settings)
    {
        RequireLength(settings.AppId, "app_id", MaxAppIdLength);
        RequireLength(settings.PushKey, "pushkey", MaxPushKeyLength);
        var existing = await store.GetForUserAsync(_userId);
        if (settings.Kind is null)
        {
            if (!existing.Any(p => p.AppId == settings.AppId && p.PushKey == settings.PushKey)) return;
            await AppendAsync(new PusherRows.PushersChanged(_userId, settings.AppId, settings.PushKey, null, [],
                existing.Any(p => p.AppId != settings.AppId || p.PushKey != settings.PushKey)));
            return;
        }

        var pusher = Validate(settings, existing);
        var displaced = settings.Append ? [] : await store.GetOtherUsersAsync(settings.AppId, settings.PushKey, _userId);
        await AppendAsync(new PusherRows.PushersChanged(_userId, settings.AppId, settings.PushKey, pusher, displaced, true));
    }

    private PusherInfo Validate(PusherSettings s, PusherInfo[] existing)
    {
        if (s.Kind != "http")
            throw MatrixException.InvalidParam(s.Kind == "email"
                ? "Email pushers need an email sender, which this server does not have"
                : $"Unknown pusher kind '{Quote.Short(s.Kind!)}'");
        var appDisplayName = s.AppDisplayName ?? throw MatrixException.MissingParam("Missing 'app_display_name'");
        var deviceDisplayName = s.DeviceDisplayName ?? throw MatrixException.MissingParam("Missing 'device_display_name'");
        var lang = s.Lang ?? throw MatrixException.MissingParam("Missing 'lang'");
        if (s.DataJson is null || JsonNode.Parse(s.DataJson) is not JsonObject data) throw MatrixException.MissingParam("Missing 'data'");
        if (data["url"] is not JsonValue u || !u.TryGetValue<string>(out var url))
            throw MatrixException.InvalidParam("An http pusher needs 'data.url'");
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            throw MatrixException.InvalidParam("'data.url' must be an absolute http or https URL");
        if (uri.AbsolutePath != HttpPushPath) throw MatrixException.InvalidParam($"'data.url' must have the path {HttpPushPath}");
        var previous = existing.FirstOrDefault(p => p.AppId == s.AppId && p.PushKey == s.PushKey);
        // A new pusher pushes what happens from here on: it starts at the newest event this process has seen (the
        // stream's minimum can lag behind it by a shard's idle tick, which would push an event from before the pusher).
        var position = previous?.Position ?? notifier.Current[StreamNames.Events].Max;
        return new PusherInfo("http", s.AppId, s.PushKey, appDisplayName, deviceDisplayName, s.ProfileTag, lang, data.ToJsonString(), s.DeviceId,
            DateTimeOffset.UtcNow.ToUnixTimeSeconds(), position);
    }

    private static void RequireLength(string value, string name, int max)
    {
        if (value.Length == 0) throw MatrixException.MissingParam($"Missing '{name}'");
        if (System.Text.Encoding.UTF8.GetByteCount(value) > max) throw MatrixException.InvalidParam($"'{name}' may be at most {max} bytes");
    }

    private async Task AppendAsync(PusherRows.PushersChanged change) =>
        await GrainFactory.GetGrain<IStreamWriterGrain>(StreamNames.WriterKey(StreamNames.Caches, 0)).AppendAsync([PusherRows.Changed(change)]);

    public Task<PusherInfo[]> ListAsync() => store.GetForUserAsync(_userId);

    public async Task WakeAsync(long position)
    {
        _wanted = Math.Max(_wanted, position);
        await DeliverAsync();
    }

    public async Task ReceiptMovedAsync(string roomId)
    {
        var pushers = await store.GetForUserAsync(_userId);
        if (pushers.Length == 0) return;
        var badge = await BadgeAsync(freshRoom: roomId);
        foreach (var pusher in pushers.Where(p => p.Kind == "http"))
        {
            var data = JsonNode.Parse(pusher.DataJson)!.AsObject();
            var body = new JsonObject
            {
                ["notification"] = new JsonObject
                {
                    ["id"] = "", ["type"] = null, ["sender"] = "",
                    ["counts"] = new JsonObject { ["unread"] = badge },
                    ["devices"] = new JsonArray(Device(pusher, data, new JsonObject())),
                },
            };
            // A badge is a hint: a lost one is corrected by the next push, so it is not retried.
            await gateway.NotifyAsync(Url(data), pusher.PushKey, body, CancellationToken.None);
        }
    }

    private async Task DeliverAsync()
    {
        var pushers = await store.GetForUserAsync(_userId);
        if (pushers.Length == 0)
        {
            // Woken through a directory that still names us (the pushers went with a deleted device): correct it once.
            if (directory.HasPushers(_userId))
                await AppendAsync(new PusherRows.PushersChanged(_userId, "", "", null, [], false));
            return;
        }
        var bound = await PersistedBoundAsync(_wanted);
        var badges = new Dictionary<long, long>();
        foreach (var pusher in pushers.Where(p => p.Kind == "http"))
            await DeliverAsync(pusher, bound, badges);
    }

    /// <summary>The events position below which everything has committed and this silo's reader applied it, waiting
    /// (bounded) for it to reach <paramref name="wanted"/>: the wake comes right after a commit.</summary>
    private async Task<long> PersistedBoundAsync(long wanted)
    {
        var deadline = DateTime.UtcNow + MaxWaitForStream;
        var min = notifier.Current.Min(StreamNames.Events);
        while (min < wanted && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
            min = notifier.Current.Min(StreamNames.Events);
        }
        return min;
    }

    /// <param name="badges">The badge as of each event pushed in this delivery, shared by the user's pushers: it counts
    /// every room of the user.</param>
    private async Task DeliverAsync(PusherInfo pusher, long bound, Dictionary<long, long> badges)
    {
        var key = (pusher.AppId, pusher.PushKey);
        var position = pusher.Position;
        var data = JsonNode.Parse(pusher.DataJson)!.AsObject();
        var url = Url(data);
        var rules = await pushRules.GetCompiledAsync(_userId);
        while (position < bound)
        {
            var events = await rooms.GetPushCandidatesAsync(_userId, position, bound, Batch);
            foreach (var ev in events)
            {
                var state = await rooms.GetCurrentStateAsync(ev.RoomId);
                if (rules.Evaluate(ev, state) is { Notify: true } actions)
                {
                    var body = await NotificationAsync(pusher, data, ev, state, actions, badges);
                    var outcome = await gateway.NotifyAsync(url, pusher.PushKey, body, CancellationToken.None);
                    if (outcome == GatewayOutcome.Rejected)
                    {
                        logger.LogInformation("Push gateway rejected pushkey of {User} ({App}): pusher removed", _userId, pusher.AppId);
                        await SetAsync(new PusherSettings(null, pusher.AppId, pusher.PushKey, null, null, null, null, null, false, null));
                        return;
                    }
                    if (outcome == GatewayOutcome.Failed && !GiveUp(key, ev))
                    {
                        if (ev.StreamPosition - 1 > position && await store.AdvanceAsync(_userId, pusher.AppId, pusher.PushKey, position, ev.StreamPosition - 1))
                            position = ev.StreamPosition - 1;
                        ScheduleRetry(key);
                        return;
                    }
                    _failing.Remove(key);
                }
                if (!await store.AdvanceAsync(_userId, pusher.AppId, pusher.PushKey, position, ev.StreamPosition)) return;
                position = ev.StreamPosition;
            }
            if (events.Count < Batch)
            {
                if (position < bound) await store.AdvanceAsync(_userId, pusher.AppId, pusher.PushKey, position, bound);
                return;
            }
        }
    }

    /// <summary>True (and forgotten) when the gateway has failed this event too often to try again.</summary>
    private bool GiveUp((string, string) key, StoredEvent ev)
    {
        var attempts = _failing.TryGetValue(key, out var f) && f.Position == ev.StreamPosition ? f.Attempts + 1 : 1;
        if (attempts < GiveUpAfterAttempts)
        {
            _failing[key] = (ev.StreamPosition, attempts);
            return false;
        }
        logger.LogWarning("Giving up pushing {Event} to a pusher of {User} after {Attempts} attempts", ev.EventId, _userId, attempts);
        _failing.Remove(key);
        return true;
    }

    private void ScheduleRetry((string, string) key)
    {
        var attempts = _failing.TryGetValue(key, out var f) ? f.Attempts : 1;
        var delay = TimeSpan.FromSeconds(Math.Min(Math.Pow(2, attempts), MaxRetryDelay.TotalSeconds));
        _retry?.Dispose();
        _retry = this.RegisterGrainTimer(async _ =>
        {
            _retry?.Dispose();
            _retry = null;
            await DeliverAsync();
        }, new GrainTimerCreationOptions(delay, Timeout.InfiniteTimeSpan));
    }

    private async Task<JsonObject> NotificationAsync(PusherInfo pusher, JsonObject data, StoredEvent ev, CurrentRoomState state, PushActions actions,
        Dictionary<long, long> badges)
    {
        if (!badges.TryGetValue(ev.StreamPosition, out var badge)) badges[ev.StreamPosition] = badge = await BadgeAsync(freshRoom: null);
        var tweaks = new JsonObject();
        foreach (var action in JsonNode.Parse(actions.ActionsJson)!.AsArray())
            if (action is JsonObject t && t["set_tweak"] is JsonValue tweakName && tweakName.TryGetValue<string>(out var tweak))
                tweaks[tweak] = t["value"]?.DeepClone() ?? (tweak == "highlight" ? true : null);
        var high = ev.Type == "m.room.encrypted" || actions.Highlight || tweaks.ContainsKey("sound");
        var notification = new JsonObject
        {
            ["event_id"] = ev.EventId,
            ["room_id"] = ev.RoomId,
            ["prio"] = high ? "high" : "low",
            ["counts"] = new JsonObject { ["unread"] = badge },
            ["devices"] = new JsonArray(Device(pusher, data, tweaks)),
        };
        if (RoomState.GetString(data, "format") == "event_id_only") return new JsonObject { ["notification"] = notification };

        var json = JsonNode.Parse(ev.Json)!.AsObject();
        notification["id"] = ev.EventId; // what gateways read before event_id had its name
        notification["type"] = ev.Type;
        notification["sender"] = ev.Sender;
        if (json["content"] is JsonObject content) notification["content"] = content.DeepClone();
        if (ev.Type == "m.room.member" && ev.StateKey is not null)
        {
            notification["membership"] = RoomEventFormat.ContentString(ev.Utf8Json, "membership");
            notification["user_is_target"] = ev.StateKey == _userId;
        }
        if (state.DisplayName(ev.Sender) is { } senderName) notification["sender_display_name"] = senderName;
        var alias = state.Get("m.room.canonical_alias", "") is { } a ? RoomEventFormat.ContentString(a.Utf8Json, "alias") : null;
        var name = state.Get("m.room.name", "") is { } n ? RoomEventFormat.ContentString(n.Utf8Json, "name") : null;
        if (!string.IsNullOrEmpty(name ?? alias)) notification["room_name"] = name ?? alias;
        if (!string.IsNullOrEmpty(alias)) notification["room_alias"] = alias;
        return new JsonObject { ["notification"] = notification };
    }

    private static JsonObject Device(PusherInfo pusher, JsonObject data, JsonObject tweaks)
    {
        // The gateway gets the pusher's data without the URL it is being sent to.
        var forGateway = (JsonObject)data.DeepClone();
        forGateway.Remove("url");
        return new JsonObject
        {
            ["app_id"] = pusher.AppId,
            ["pushkey"] = pusher.PushKey,
            ["pushkey_ts"] = pusher.PushKeyTs,
            ["data"] = forGateway,
            ["tweaks"] = tweaks,
        };
    }

    private static string Url(JsonObject data) => RoomState.GetString(data, "url") ?? "";

    /// <summary>The app badge: how many of the user's rooms have unread notifications (Synapse's default, counting rooms
    /// rather than messages). <paramref name="freshRoom"/> is counted from the database: its receipt just moved.</summary>
    private async Task<long> BadgeAsync(string? freshRoom)
    {
        long badge = 0;
        foreach (var roomId in await rooms.GetJoinedRoomsAsync(_userId))
        {
            var (notifications, _) = await unread.GetAsync(roomId, _userId, await rooms.GetCurrentStateAsync(roomId),
                rooms.PositionIn(notifier.Current, roomId), fresh: roomId == freshRoom);
            if (notifications > 0) badge++;
        }
        return badge;
    }
}

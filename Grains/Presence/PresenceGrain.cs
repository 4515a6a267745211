using Homeserver.Storage;
using Homeserver.AccountData;
using Homeserver.Errors;
using Homeserver.Streams;
using Microsoft.Extensions.Options;

namespace Homeserver.Presence;

/// <summary>One user's presence (see <see cref="IPresenceGrain"/>). While the user is not offline a timer watches for
/// idleness (online → unavailable, and before it the end of <c>currently_active</c>) and for clients that stopped syncing
/// (→ offline), and the activation is kept alive, so no transition is lost to deactivation. What goes out follows
/// Synapse's <c>should_notify</c>: a change of state or status message, or of <c>currently_active</c> while online;
/// activity of a user already online and currently active only moves <c>last_active</c> here (stored at most once a
/// granularity), so a busy user in a big room does not wake its members on every request.</summary>
public sealed class PresenceGrain(PresenceStore store, IOptions<PresenceOptions> options) : Grain, IPresenceGrain
{
    private PresenceRow _current = null!;
    private IGrainTimer? _timer;
    // When the user goes offline unless a client syncs (or sets presence) again first.
    private DateTimeOffset _offlineAt;
    // The last_active_ts the database holds for the user (a notified row's or one stored since).
    private long _storedLastActiveTs;

    private TimeSpan Idle => options.Value.PresenceIdleTimeout;
    private TimeSpan SyncTimeout => options.Value.PresenceSyncTimeout;
    private TimeSpan Granularity => options.Value.PresenceLastActiveGranularity;

    public override async Task OnActivateAsync(CancellationToken ct)
    {
        var userId = this.GetPrimaryKeyString();
        _current = await StorageOutage.DuringActivationAsync(() => store.GetAsync(userId)) ?? new PresenceRow(userId, "offline", null, 0, false);
        _storedLastActiveTs = _current.LastActiveTs;
        // A fresh activation does not know whether a client is still syncing (the silo that had it may be gone):
        // give the clients one sync timeout to show up.
        if (_current.State != "offline") KeepOnline(TimeSpan.Zero);
    }

    public Task<long> SetAsync(string presence, string? statusMsg)
    {
        if (!PresenceStore.States.Contains(presence)) throw MatrixException.InvalidParam($"Invalid presence state '{Quote.Short(presence)}'");
        return ChangeAsync(presence, statusMsg, TimeSpan.Zero);
    }

    public Task WatchAsync() => Task.CompletedTask;

    public Task<PresenceRow> GetAsync() => Task.FromResult(_current);

    public Task<long> SyncedAsync(string presence, TimeSpan longPoll) =>
        PresenceStore.States.Contains(presence) && presence != "offline"
            ? ChangeAsync(presence, _current.StatusMsg, longPoll)
            : Task.FromResult(0L);

    private async Task<long> ChangeAsync(string presence, string? statusMsg, TimeSpan longPoll)
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var online = presence == "online";
        var next = _current with
        {
            State = presence,
            StatusMsg = statusMsg,
            LastActiveTs = online ? now : _current.LastActiveTs,
            CurrentlyActive = online,
        };
        if (presence != "offline") KeepOnline(longPoll);
        if (!ShouldNotify(_current, next))
        {
            _current = next;
            return 0;
        }
        return await WriteAsync(next);
    }

    /// <summary>Synapse's <c>should_notify</c>: whether a change is worth a stream row (and so waking everyone who shares
    /// a room with the user). A move of <c>last_active</c> alone is not while the user is online and currently active;
    /// once they are not, it is when it moves by more than the granularity.</summary>
    public static bool ShouldNotify(PresenceRow old, PresenceRow next, TimeSpan granularity)
    {
        if (old.State != next.State || old.StatusMsg != next.StatusMsg) return true;
        if (old.State == "online" && old.CurrentlyActive != next.CurrentlyActive) return true;
        return next.LastActiveTs - old.LastActiveTs > granularity.TotalMilliseconds && !(next.State == "online" && next.CurrentlyActive);
    }

    private bool ShouldNotify(PresenceRow old, PresenceRow next) => ShouldNotify(old, next, Granularity);

    private async Task<long> WriteAsync(PresenceRow next)
    {
        var position = await UserStreamSync.AppendAsync(GrainFactory, StreamNames.Presence,
            [UserStreamSync.Row(PresencePersister.KindName, PresenceStore.Key(next.UserId), next)]);
        _current = next;
        _storedLastActiveTs = next.LastActiveTs;
        return position;
    }

    private TimeSpan CheckPeriod => TimeSpan.FromMilliseconds(Math.Max(50,
        Math.Min(Math.Min(Idle.TotalMilliseconds, Granularity.TotalMilliseconds) / 4, SyncTimeout.TotalMilliseconds / 3)));

    /// <summary>Pushes the offline deadline past the client's next expected sync and makes sure the timer runs.</summary>
    private void KeepOnline(TimeSpan longPoll)
    {
        var at = DateTimeOffset.UtcNow + longPoll + SyncTimeout;
        if (at > _offlineAt) _offlineAt = at;
        _timer ??= this.RegisterGrainTimer(CheckAsync, new GrainTimerCreationOptions(CheckPeriod, CheckPeriod) { Interleave = false });
        StayActive();
    }

    /// <summary>Keeps the activation until the transitions still to come (idle, offline) have been checked.</summary>
    private void StayActive()
    {
        var untilOffline = _offlineAt - DateTimeOffset.UtcNow;
        DelayDeactivation((untilOffline > Idle ? untilOffline : Idle) + CheckPeriod + CheckPeriod);
    }

    private async Task CheckAsync(CancellationToken ct)
    {
        if (_current.State == "offline")
        {
            _timer?.Dispose();
            _timer = null;
            return;
        }
        StayActive();
        if (DateTimeOffset.UtcNow >= _offlineAt)
        {
            await WriteAsync(_current with { State = "offline", CurrentlyActive = false });
            return;
        }
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var idleFor = now - _current.LastActiveTs;
        if (_current.State == "online" && idleFor >= Idle.TotalMilliseconds)
            await WriteAsync(_current with { State = "unavailable", CurrentlyActive = false });
        // Synapse's handle_timeout: "so that we send down a notification that we've stopped updating".
        else if (_current is { State: "online", CurrentlyActive: true } && idleFor >= Granularity.TotalMilliseconds)
            await WriteAsync(_current with { CurrentlyActive = false });
        // Activity that notified nobody reaches the database at most once a granularity (GET /presence reads the grain).
        else if (_current.LastActiveTs - _storedLastActiveTs >= Granularity.TotalMilliseconds)
        {
            await store.StoreLastActiveAsync(_current.UserId, _current.LastActiveTs);
            _storedLastActiveTs = _current.LastActiveTs;
        }
    }
}

using Homeserver.Storage;
using Homeserver.AccountData;
using Homeserver.Errors;
using Homeserver.Streams;
using Microsoft.Extensions.Options;

namespace Homeserver.Presence;

/// <summary>One user's presence (see <see cref="IPresenceGrain"/>). While the user is not offline a timer watches for
/// idleness (online → unavailable) and for clients that stopped syncing (→ offline), and the activation is kept alive,
/// so neither transition is lost to deactivation.</summary>
public sealed class PresenceGrain(PresenceStore store, IOptions<PresenceOptions> options) : Grain, IPresenceGrain
{
    private PresenceRow _current = null!;
    private IGrainTimer? _timer;
    // When the user goes offline unless a client syncs (or sets presence) again first.
    private DateTimeOffset _offlineAt;

    private TimeSpan Idle => options.Value.PresenceIdleTimeout;
    private TimeSpan SyncTimeout => options.Value.PresenceSyncTimeout;

    public override async Task OnActivateAsync(CancellationToken ct)
    {
        var userId = this.GetPrimaryKeyString();
        _current = await StorageOutage.DuringActivationAsync(() => store.GetAsync(userId)) ?? new PresenceRow(userId, "offline", null, 0, false);
        // A fresh activation does not know whether a client is still syncing (the silo that had it may be gone):
        // give the clients one sync timeout to show up.
        if (_current.State != "offline") KeepOnline(TimeSpan.Zero);
    }

    public Task<long> SetAsync(string presence, string? statusMsg)
    {
        if (!PresenceStore.States.Contains(presence)) throw MatrixException.InvalidParam($"Invalid presence state '{Quote.Short(presence)}'");
        return ChangeAsync(presence, statusMsg, TimeSpan.Zero, forceWrite: true);
    }

    public Task WatchAsync() => Task.CompletedTask;

    public Task<long> SyncedAsync(string presence, TimeSpan longPoll) =>
        PresenceStore.States.Contains(presence) && presence != "offline"
            ? ChangeAsync(presence, _current.StatusMsg, longPoll, forceWrite: false)
            : Task.FromResult(0L);

    private async Task<long> ChangeAsync(string presence, string? statusMsg, TimeSpan longPoll, bool forceWrite)
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
        // Activity alone only moves last_active; a row goes out when something a client shows changes.
        var visible = next.State != _current.State || next.StatusMsg != _current.StatusMsg || next.CurrentlyActive != _current.CurrentlyActive;
        if (!visible && !forceWrite)
        {
            _current = next;
            return 0;
        }
        return await WriteAsync(next);
    }

    private async Task<long> WriteAsync(PresenceRow next)
    {
        var position = await UserStreamSync.AppendAsync(GrainFactory, StreamNames.Presence,
            [UserStreamSync.Row(PresencePersister.KindName, PresenceStore.Key(next.UserId), next)]);
        _current = next;
        return position;
    }

    private TimeSpan CheckPeriod => TimeSpan.FromMilliseconds(Math.Max(50, Math.Min(Idle.TotalMilliseconds / 4, SyncTimeout.TotalMilliseconds / 3)));

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
        var idleFor = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - _current.LastActiveTs;
        if (_current.State == "online" && idleFor >= Idle.TotalMilliseconds)
            await WriteAsync(_current with { State = "unavailable", CurrentlyActive = false });
    }
}

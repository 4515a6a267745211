using Homeserver.AccountData;
using Homeserver.Errors;
using Homeserver.Streams;
using Microsoft.Extensions.Options;

namespace Homeserver.Presence;

/// <summary>One user's presence (see <see cref="IPresenceGrain"/>). While the user is online a timer watches for
/// idleness and the activation is kept alive, so the idle transition is not lost to deactivation.</summary>
public sealed class PresenceGrain(PresenceStore store, IOptions<PresenceOptions> options) : Grain, IPresenceGrain
{
    private PresenceRow _current = null!;
    private IGrainTimer? _idleTimer;

    private TimeSpan Idle => options.Value.PresenceIdleTimeout;

    public override async Task OnActivateAsync(CancellationToken ct)
    {
        var userId = this.GetPrimaryKeyString();
        _current = await store.GetAsync(userId) ?? new PresenceRow(userId, "offline", null, 0, false);
        if (_current.State == "online") WatchIdle();
    }

    public Task<long> SetAsync(string presence, string? statusMsg)
    {
        if (!PresenceStore.States.Contains(presence)) throw MatrixException.InvalidParam($"Invalid presence state '{presence}'");
        return ChangeAsync(presence, statusMsg, forceWrite: true);
    }

    public Task<long> SyncedAsync(string presence) =>
        PresenceStore.States.Contains(presence) && presence != "offline"
            ? ChangeAsync(presence, _current.StatusMsg, forceWrite: false)
            : Task.FromResult(0L);

    private async Task<long> ChangeAsync(string presence, string? statusMsg, bool forceWrite)
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
        // Activity alone only moves last_active; a row goes out when something a client shows changes.
        var visible = next.State != _current.State || next.StatusMsg != _current.StatusMsg || next.CurrentlyActive != _current.CurrentlyActive;
        if (!visible && !forceWrite)
        {
            _current = next;
            return 0;
        }
        var position = await WriteAsync(next);
        if (online) WatchIdle();
        return position;
    }

    private async Task<long> WriteAsync(PresenceRow next)
    {
        var position = await UserStreamSync.AppendAsync(GrainFactory, StreamNames.Presence,
            [UserStreamSync.Row(PresencePersister.KindName, PresenceStore.Key(next.UserId), next)]);
        _current = next;
        return position;
    }

    private void WatchIdle()
    {
        var period = TimeSpan.FromMilliseconds(Math.Max(50, Idle.TotalMilliseconds / 4));
        _idleTimer ??= this.RegisterGrainTimer(CheckIdleAsync, new GrainTimerCreationOptions(period, period) { Interleave = false });
        DelayDeactivation(Idle + Idle);
    }

    private async Task CheckIdleAsync(CancellationToken ct)
    {
        if (_current.State != "online")
        {
            _idleTimer?.Dispose();
            _idleTimer = null;
            return;
        }
        DelayDeactivation(Idle + Idle);
        var idleFor = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - _current.LastActiveTs;
        if (idleFor >= Idle.TotalMilliseconds)
            await WriteAsync(_current with { State = "unavailable", CurrentlyActive = false });
    }
}

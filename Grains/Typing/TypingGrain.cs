using Homeserver.AccountData;
using Homeserver.Errors;
using Homeserver.Rooms;
using Homeserver.Streams;

namespace Homeserver.Typing;

/// <summary>The room's typing users and their expiry times (see <see cref="ITypingGrain"/>).</summary>
public sealed class TypingGrain(RoomEventStore rooms) : Grain, ITypingGrain
{
    public const long MaxTimeoutMs = 120_000;
    private static readonly TimeSpan ExpiryCheck = TimeSpan.FromMilliseconds(250);

    private readonly Dictionary<string, long> _expiry = new(StringComparer.Ordinal);
    private IGrainTimer? _timer;

    public async Task<long> SetTypingAsync(string userId, bool typing, long timeoutMs)
    {
        var roomId = this.GetPrimaryKeyString();
        if (await rooms.GetMembershipAsync(roomId, userId) != "join")
            throw MatrixException.Forbidden("You are not in this room");
        bool changed;
        if (typing)
        {
            changed = !_expiry.ContainsKey(userId);
            _expiry[userId] = Environment.TickCount64 + Math.Clamp(timeoutMs, 0, MaxTimeoutMs);
            _timer ??= this.RegisterGrainTimer(ExpireAsync, new GrainTimerCreationOptions(ExpiryCheck, ExpiryCheck) { Interleave = false });
        }
        else changed = _expiry.Remove(userId);
        return changed ? await PublishAsync() : 0;
    }

    private async Task ExpireAsync(CancellationToken ct)
    {
        var now = Environment.TickCount64;
        var expired = _expiry.Where(kv => kv.Value <= now).Select(kv => kv.Key).ToList();
        foreach (var user in expired) _expiry.Remove(user);
        if (_expiry.Count == 0)
        {
            _timer?.Dispose();
            _timer = null;
        }
        if (expired.Count > 0) await PublishAsync();
    }

    private Task<long> PublishAsync()
    {
        var roomId = this.GetPrimaryKeyString();
        var users = _expiry.Keys.Order(StringComparer.Ordinal).ToArray();
        return UserStreamSync.AppendAsync(GrainFactory, StreamNames.Typing,
            [UserStreamSync.Row(TypingState.Kind, roomId, new TypingRow(roomId, users))]);
    }
}

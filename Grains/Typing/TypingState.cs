using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Homeserver.AccountData;
using Homeserver.Streams;
using Homeserver.Sync;

namespace Homeserver.Typing;

/// <summary>The stream row: a room's complete typing list after a change.</summary>
public sealed record TypingRow(string RoomId, string[] UserIds);

/// <summary>
/// This silo's view of who is typing where, fed by the <c>typing</c> stream before the silo's reader passes each row.
/// Typing has no table of its own: a silo that starts gets the log's rows of the longest typing timeout replayed
/// (older lists have expired), and the typing writer prunes older rows.
/// </summary>
public sealed class TypingState : IStreamRowHandler
{
    public const string Kind = "typing.set";

    private readonly ConcurrentDictionary<string, (long Position, string[] UserIds)> _rooms = new(StringComparer.Ordinal);

    public string Stream => StreamNames.Typing;

    public TimeSpan Replay => TimeSpan.FromMilliseconds(TypingGrain.MaxTimeoutMs);

    public void Handle(StreamEntry entry)
    {
        if (entry.Kind != Kind) return;
        var row = UserStreamSync.Read<TypingRow>(entry);
        _rooms.AddOrUpdate(row.RoomId, (entry.Position, row.UserIds), (_, old) => old.Position > entry.Position ? old : (entry.Position, row.UserIds));
    }

    public (long Position, string[] UserIds)? Get(string roomId) => _rooms.TryGetValue(roomId, out var v) ? v : null;
}

/// <summary>Typing in /sync: an <c>m.typing</c> ephemeral event per joined room whose list changed in (since, to]
/// (on an initial sync, per room where someone is typing).</summary>
public sealed class TypingSyncSection(TypingState state) : ISyncSection
{
    public IEnumerable<string> WakeKeys(SyncContext context) => context.JoinedRooms;

    public Task ContributeAsync(SyncContext context, JsonObject response)
    {
        var since = UserStreamSync.Since(context, StreamNames.Typing);
        var to = UserStreamSync.To(context, StreamNames.Typing);
        foreach (var roomId in context.JoinedRooms)
        {
            if (!context.Filter.IncludesRoom(roomId) || state.Get(roomId) is not { } typing) continue;
            if (typing.Position <= since || typing.Position > to) continue;
            if (context.Since is null && typing.UserIds.Length == 0) continue;
            var users = new JsonArray();
            foreach (var u in typing.UserIds) users.Add(u);
            UserStreamSync.Events(context.JoinedRoom(roomId), "ephemeral")
                .Add(new JsonObject { ["type"] = "m.typing", ["content"] = new JsonObject { ["user_ids"] = users } });
            context.HasChanges = true;
        }
        return Task.CompletedTask;
    }
}

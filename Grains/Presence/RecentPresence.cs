using Homeserver.AccountData;
using Homeserver.Caches;
using Homeserver.Streams;

namespace Homeserver.Presence;

/// <summary>
/// The presence rows this silo's reader applied lately, per user (<see cref="RecentRows{T}"/>), so that the long-polls
/// a presence change wakes read it from memory instead of the database. In a room of 10,000 members with 1,000 of
/// them syncing, each wave of users coming online wakes every poller at once: reading the changes from the database
/// then takes a connection per poller at the same moment, more than the pool holds.
/// </summary>
public sealed class RecentPresence : IStreamRowHandler
{
    /// <summary>Its name among the caches (<c>Homeserver:Caches:Sizes</c>, metrics): the users held, each with their
    /// last few rows.</summary>
    public const string Cache = "presence.recent";

    private readonly RecentRows<(long Position, PresenceRow Row)> _rows;

    public RecentPresence(CacheRegistry caches)
    {
        _rows = new(perKey: 4, maxKeys: caches.SizeOf(Cache, 50_000));
        caches.Track(Cache, () => new CacheStatus(Cache, _rows.KeyCount, 0, 0, 0));
    }

    public string Stream => StreamNames.Presence;

    public void Handle(StreamEntry entry)
    {
        if (entry.Kind != PresencePersister.KindName) return;
        var row = UserStreamSync.Read<PresenceRow>(entry);
        _rows.Add(row.UserId, entry.Position, (entry.Position, row));
    }

    /// <summary>
    /// Each user's latest presence set in (since, to], in position order, as <see cref="PresenceStore.GetChangesAsync"/>
    /// reads it, for the users whose window memory holds whole; the others are added to <paramref name="unknown"/> for
    /// the caller to read from the database. Windows from before this silo followed the stream are the caller's to
    /// refuse (<see cref="StreamNotifier.Tracks"/>).
    /// </summary>
    public List<PresenceRow> GetChanges(IEnumerable<string> userIds, long since, long to, List<string> unknown)
    {
        var latest = new List<(long Position, PresenceRow Row)>();
        foreach (var userId in userIds)
        {
            if (!_rows.TryGetWindow(userId, since, to, out var window)) unknown.Add(userId);
            else if (window.Count > 0) latest.Add(window[^1]);
        }
        latest.Sort((a, b) => a.Position.CompareTo(b.Position));
        return latest.ConvertAll(l => l.Row);
    }
}

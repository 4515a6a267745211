using System.Collections.Concurrent;
using System.Net;

namespace Homeserver.Accounts;

/// <summary>
/// This process's client connections not yet written to <c>client_ips</c>: the latest time each (user, device, ip,
/// user agent) was seen, recorded on every authenticated request and written by <see cref="ClientIpFlusher"/> every
/// few seconds in one statement, as Synapse batches its <c>user_ips</c>. Recording is on the path of every request,
/// so it takes no lock beyond the dictionary's and allocates only for a key not seen since the last flush.
/// </summary>
public sealed class ClientIpBatch
{
    /// <summary>
    /// At most this many distinct keys wait for a flush (a few MB with user agents cut to
    /// <see cref="MaxUserAgentLength"/>). When full, a new key is dropped, not the oldest one (finding the oldest would
    /// need an ordered structure on the hot path), and an early flush is asked for; keys already waiting keep being
    /// updated. A dropped sighting is recorded again by the client's next request, once the flush has made room.
    /// </summary>
    public const int MaxPending = 10_000;

    /// <summary>User agents are kept to this many characters (Synapse keeps them whole; a header can be kilobytes).</summary>
    public const int MaxUserAgentLength = 512;

    private readonly ConcurrentDictionary<Key, long> _pending = new();
    private readonly SemaphoreSlim _flushDue = new(0);
    private readonly Func<long> _clock;
    // Approximate (two first sightings of one key may both count it); set to the true count after every flush.
    private int _count;
    private int _earlyFlushRequested;

    public ClientIpBatch() : this(() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()) { }

    /// <param name="clock">Milliseconds since the epoch (tests pass their own).</param>
    public ClientIpBatch(Func<long> clock) => _clock = clock;

    /// <summary>One connection as recorded: the IP as text ("" when the transport has none, e.g. a Unix socket).</summary>
    public readonly record struct Entry(string UserId, string DeviceId, string Ip, string UserAgent, long LastSeen);

    private readonly record struct Key(string UserId, string DeviceId, IPAddress? Ip, string UserAgent);

    /// <summary>Notes that the device made a request from <paramref name="ip"/> with <paramref name="userAgent"/> now.</summary>
    public void Record(string userId, string deviceId, IPAddress? ip, string? userAgent)
    {
        // A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d; they are the same client as a.b.c.d.
        if (ip is { IsIPv4MappedToIPv6: true }) ip = ip.MapToIPv4();
        var key = new Key(userId, deviceId, ip, UserAgentText(userAgent));
        if (!_pending.ContainsKey(key))
        {
            if (Volatile.Read(ref _count) >= MaxPending)
            {
                RequestEarlyFlush();
                return;
            }
            if (Interlocked.Increment(ref _count) >= MaxPending) RequestEarlyFlush();
        }
        // Two requests of one key racing here may leave the earlier time by a millisecond or so: harmless.
        _pending[key] = _clock();
    }

    /// <summary>The waiting connections of one user (for reads that must include what this process has not flushed).
    /// A scan of at most <see cref="MaxPending"/> entries: cheap next to the database read it accompanies.</summary>
    public List<Entry> PendingFor(string userId)
    {
        var entries = new List<Entry>();
        foreach (var (key, lastSeen) in _pending)
            if (string.Equals(key.UserId, userId, StringComparison.Ordinal)) entries.Add(ToEntry(key, lastSeen));
        return entries;
    }

    /// <summary>Completes after <paramref name="period"/>, or earlier when the batch filled up.</summary>
    public async Task WaitUntilFlushDueAsync(TimeSpan period, CancellationToken ct)
    {
        await _flushDue.WaitAsync(period, ct);
        Volatile.Write(ref _earlyFlushRequested, 0);
    }

    /// <summary>
    /// Hands what is waiting to <paramref name="write"/> and, once it succeeded, removes it, except keys seen again
    /// meanwhile (their newer time goes in the next flush). Entries stay visible to <see cref="PendingFor"/> while they
    /// are being written, so a read on this process never misses a connection between the batch and the table. When
    /// the write fails everything stays for the next attempt (bounded by <see cref="MaxPending"/>).
    /// </summary>
    public async Task FlushAsync(Func<IReadOnlyList<Entry>, Task> write)
    {
        var taken = new List<KeyValuePair<Key, long>>();
        foreach (var pending in _pending) taken.Add(pending);
        if (taken.Count > 0)
        {
            await write(taken.Select(p => ToEntry(p.Key, p.Value)).ToList());
            foreach (var written in taken) _pending.TryRemove(written);
        }
        // Count takes every lock of the dictionary: fine once per flush, not per request.
        Volatile.Write(ref _count, _pending.Count);
    }

    private static Entry ToEntry(Key key, long lastSeen) =>
        new(key.UserId, key.DeviceId, key.Ip?.ToString() ?? "", key.UserAgent, lastSeen);

    private void RequestEarlyFlush()
    {
        if (Interlocked.Exchange(ref _earlyFlushRequested, 1) == 0) _flushDue.Release();
    }

    private static string UserAgentText(string? userAgent)
    {
        if (string.IsNullOrEmpty(userAgent)) return "";
        if (userAgent.Length > MaxUserAgentLength) userAgent = userAgent[..MaxUserAgentLength];
        // Kestrel refuses NUL in headers today; a NUL parameter would also break a prepared statement's connection
        // (see StorageDataSource), so it must never reach the flush.
        return userAgent.Contains('\0') ? userAgent.Replace('\0', '\uFFFD') : userAgent;
    }
}

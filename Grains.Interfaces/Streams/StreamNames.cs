namespace Homeserver.Streams;

/// <summary>
/// The fixed set of replication streams. Every kind of change in the homeserver is appended to one of these.
/// The order of <see cref="All"/> is the field order of a serialised <see cref="StreamToken"/>: append only.
/// </summary>
public static class StreamNames
{
    public const string Events = "events";
    public const string Caches = "caches";
    public const string Typing = "typing";
    public const string Receipts = "receipts";
    public const string Presence = "presence";
    public const string AccountData = "account_data";
    public const string ToDevice = "to_device";
    public const string DeviceLists = "device_lists";
    public const string PushRules = "push_rules";

    public static readonly IReadOnlyList<string> All =
        [Events, Caches, Typing, Receipts, Presence, AccountData, ToDevice, DeviceLists, PushRules];

    public static bool IsKnown(string stream) => All.Contains(stream);

    /// <summary>Key of the writer grain for one shard of a stream: "{stream}/{writer}".</summary>
    public static string WriterKey(string stream, int writer) => $"{stream}/{writer}";

    public static (string Stream, int Writer) ParseWriterKey(string key)
    {
        var slash = key.LastIndexOf('/');
        if (slash <= 0 || !int.TryParse(key.AsSpan(slash + 1), out var writer) || writer < 0)
            throw new ArgumentException($"Malformed stream writer key '{key}'", nameof(key));
        return (key[..slash], writer);
    }
}

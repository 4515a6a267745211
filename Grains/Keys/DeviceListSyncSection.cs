using Homeserver.Streams;
using System.Text.Json.Nodes;
using Homeserver.Sync;

namespace Homeserver.Keys;

/// <summary>
/// The end-to-end part of <c>/sync</c>: <c>device_lists</c> (changed/left since the last sync), and the requesting
/// device's <c>device_one_time_keys_count</c> and <c>device_unused_fallback_key_types</c>, which are sent every time
/// (clients top their keys up from them) but never count as a change on their own.
/// </summary>
public sealed class DeviceListSyncSection(DeviceListStore lists, KeyCountCache counts) : ISyncSection
{
    // Device list rows are keyed by the changed user and by each of their rooms.
    public IEnumerable<string> WakeKeys(SyncContext context) => context.JoinedRooms.Append(context.Requester.UserId);

    public async Task ContributeAsync(SyncContext context, JsonObject response)
    {
        var requester = context.Requester;
        // "changed"/"left" follow membership as well as device changes.
        if (context.Since is { } since && (context.StreamMoved(StreamNames.DeviceLists) || context.MembershipChanged))
        {
            var changes = KnownJoinsOnly(context) ?? await lists.GetChangesAsync(requester.UserId, since, context.To);
            if (changes.Changed.Count > 0 || changes.Left.Count > 0)
            {
                response["device_lists"] = new JsonObject
                {
                    ["changed"] = new JsonArray(changes.Changed.Select(u => (JsonNode)JsonValue.Create(u)!).ToArray()),
                    ["left"] = new JsonArray(changes.Left.Select(u => (JsonNode)JsonValue.Create(u)!).ToArray()),
                };
                context.HasChanges = true;
            }
        }
        var device = await counts.GetAsync(requester.UserId, requester.DeviceId);
        var oneTime = new JsonObject();
        foreach (var (algorithm, count) in device.OneTimeKeys) oneTime[algorithm] = count;
        response["device_one_time_keys_count"] = oneTime;
        response["device_unused_fallback_key_types"] = new JsonArray(device.UnusedFallbackTypes.Select(a => (JsonNode)JsonValue.Create(a)!).ToArray());
    }

    /// <summary>
    /// When no device list moved and the room part saw every membership change of the window, all of them others
    /// joining the user's joined rooms: those joiners, as <see cref="DeviceListStore.GetChangesAsync"/> would answer
    /// (someone now in a room with the user is sharing one), without its queries. Null otherwise: someone leaving may
    /// still share another room, which only the database can tell.
    /// </summary>
    private static DeviceListStore.Changes? KnownJoinsOnly(SyncContext context)
    {
        if (context.StreamMoved(StreamNames.DeviceLists) || context.KnownMembershipChanges is not { } known) return null;
        var joinedRooms = context.JoinedRooms.ToHashSet(StringComparer.Ordinal);
        var last = new Dictionary<(string, string), string>();
        foreach (var (roomId, userId, membership) in known)
        {
            if (userId == context.Requester.UserId) return null;
            if (!joinedRooms.Contains(roomId)) continue; // a peeked room: the database path does not look there either
            last[(roomId, userId)] = membership;
        }
        if (last.Values.Any(m => m is "leave" or "ban")) return null;
        var joined = last.Where(kv => kv.Value == "join").Select(kv => kv.Key.Item2).Distinct().Order(StringComparer.Ordinal).ToList();
        return new DeviceListStore.Changes(joined, []);
    }
}

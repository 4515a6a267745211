using System.Text.Json.Nodes;
using Homeserver.Receipts;
using Homeserver.Rooms;

namespace Homeserver.PushRules;

/// <summary>One page of <c>GET /notifications</c>; <see cref="NextToken"/> is null when nothing older is left.</summary>
public sealed record NotificationPage(JsonArray Notifications, string? NextToken);

/// <summary>
/// <c>GET /notifications</c> (spec "Listing Notifications"): the events of the user's joined rooms that the user's push
/// rules say notify, newest first, each with the rule's actions and whether the user's read receipt has passed it.
/// Like the unread counts (<see cref="UnreadCounts"/>), the rules are evaluated when the list is read rather than for
/// every member on every send. A page reads at most <see cref="MaxScanned"/> events: a user whose rules rarely notify
/// gets a short page and a <c>next_token</c> to go on from instead of a request that reads their whole history.
/// </summary>
public sealed class NotificationList(RoomEventStore rooms, PushRulesStore pushRules, ReceiptStore receipts)
{
    public const int MaxScanned = 2_000;
    private const int Batch = 200;

    /// <param name="from">A <c>next_token</c> of an earlier page (a stream position), or null for the newest.</param>
    public async Task<NotificationPage> GetAsync(string userId, long? from, int limit, bool onlyHighlights)
    {
        var rules = await pushRules.GetCompiledAsync(userId);
        var found = new List<(StoredEvent Event, PushActions Actions)>();
        var before = from ?? long.MaxValue;
        var scanned = 0;
        var exhausted = false;
        while (found.Count < limit && scanned < MaxScanned)
        {
            var batch = await rooms.GetJoinedRoomsEventsBeforeAsync(userId, before, Batch);
            foreach (var ev in batch)
            {
                before = ev.StreamPosition;
                scanned++;
                if (rules.Evaluate(ev, await rooms.GetCurrentStateAsync(ev.RoomId)) is { Notify: true } actions
                    && (!onlyHighlights || actions.Highlight))
                {
                    found.Add((ev, actions));
                    if (found.Count == limit) break;
                }
            }
            if (batch.Count < Batch && found.Count < limit) { exhausted = true; break; }
        }

        var readUpTo = found.Count == 0 ? new Dictionary<string, long>()
            : await receipts.GetReadUpToAsync(userId, found.Select(f => f.Event.RoomId).Distinct().ToList());
        var list = new JsonArray();
        foreach (var (ev, actions) in found)
            list.Add(new JsonObject
            {
                ["room_id"] = ev.RoomId,
                ["event"] = RoomEventFormat.ToClient(ev),
                ["actions"] = JsonNode.Parse(actions.ActionsJson),
                ["read"] = readUpTo.TryGetValue(ev.RoomId, out var read) && read >= ev.StreamPosition,
                ["ts"] = ev.OriginServerTs,
                ["profile_tag"] = null,
            });
        return new NotificationPage(list, exhausted ? null : before.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }
}

using System.Text.Json.Nodes;
using Homeserver.Accounts;
using Homeserver.Rooms;
using Homeserver.Streams;
using Homeserver.Sync;
using Homeserver.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Homeserver.Tests.UserStreams;

/// <summary>
/// Runs this area's /sync sections on one silo the way the sync handler does: wait on the sections' wake keys after
/// <c>since</c>, then let every section contribute for (since, current]. Lets the sections be tested through the
/// silo's real reader, caches and waiters without the HTTP handler.
/// </summary>
public static class SyncProbe
{
    public sealed record Result(JsonObject Response, StreamToken NextBatch, bool Woken, bool HasChanges)
    {
        public JsonArray AccountData => Response["account_data"]?["events"]?.AsArray() ?? [];
        public JsonArray ToDevice => Response["to_device"]?["events"]?.AsArray() ?? [];
        public JsonArray Presence => Response["presence"]?["events"]?.AsArray() ?? [];
        public JsonObject? Room(string roomId) => Response["rooms"]?["join"]?[roomId]?.AsObject();
        public JsonArray RoomEvents(string roomId, string section) => Room(roomId)?[section]?["events"]?.AsArray() ?? [];
    }

    public static async Task<Result> SyncAsync(TestSilo silo, MatrixTestClient client, StreamToken? since, TimeSpan timeout,
        string? setPresence = null)
    {
        var sections = silo.Services.GetServices<ISyncSection>().ToList();
        var notifier = silo.Get<StreamNotifier>();
        var rooms = await silo.Get<RoomEventStore>().GetJoinedRoomsAsync(client.UserId);
        SyncContext Context(StreamToken to) => new()
        {
            Requester = new Requester(client.UserId, client.DeviceId, false),
            Since = since,
            To = to,
            Filter = SyncFilter.Default,
            FullState = false,
            SetPresence = setPresence,
            JoinedRooms = rooms,
        };
        var woken = false;
        if (since is not null)
        {
            var keys = sections.SelectMany(s => s.WakeKeys(Context(notifier.Current))).Distinct().ToList();
            woken = await notifier.WaitForChangeAsync(since, keys, timeout);
        }
        var to = notifier.Current;
        var context = Context(to);
        var response = new JsonObject();
        context.JoinedRoom = roomId =>
        {
            if (!context.JoinedRoomResponses.TryGetValue(roomId, out var room))
            {
                context.JoinedRoomResponses[roomId] = room = new JsonObject();
                if (response["rooms"] is not JsonObject r) response["rooms"] = r = new JsonObject { ["join"] = new JsonObject() };
                r["join"]![roomId] = room;
            }
            return room;
        };
        foreach (var section in sections) await section.ContributeAsync(context, response);
        return new Result(response, to, woken, context.HasChanges);
    }
}

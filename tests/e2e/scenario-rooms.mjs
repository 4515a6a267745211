// Rooms through matrix-js-sdk with two syncing clients on different silos: alice (silo 0) creates a room inviting
// bob (silo 1); bob sees the invite and joins; they exchange messages that must arrive in order; a state change is
// seen by the other side; a repeated transaction id yields one event; bob's second device (silo 0, short initial sync)
// back-paginates the whole history with scrollback and with raw /messages; bob leaves and alice sees it.
// Usage: node scenario-rooms.mjs <baseUrlSilo0> <baseUrlSilo1>
import {
    assert, assertEqual, baseUrls, expectMatrixError, newClient, registerWithDummy, registerWithUiaFlow, run, sdk,
    startSyncing, step, uniqueName, waitUntil,
} from "./harness.mjs";

const { ClientEvent, Direction, EventType, KnownMembership, Method, RoomEvent, RoomMemberEvent } = sdk;
const [silo0, silo1] = baseUrls(2);

await run("rooms", async (clients) => {
    const password = "correct horse battery staple";

    const aliceSession = await step("alice registers on silo 0 through the user-interactive flow",
        () => registerWithUiaFlow(silo0, "alice", uniqueName("alice"), password));
    const bobSession = await step("bob registers on silo 1 with a one-request m.login.dummy",
        () => registerWithDummy(silo1, "bob", uniqueName("bob"), password));

    const alice = newClient(silo0, "alice", aliceSession);
    const bob = newClient(silo1, "bob", bobSession);
    clients.push(alice, bob);

    // Everything each client hears, recorded from the start so no step races the event it waits for.
    const live = { alice: [], bob: [] };
    const memberships = { alice: [], bob: [] };
    for (const [name, client] of [["alice", alice], ["bob", bob]]) {
        client.on(RoomEvent.Timeline, (event, room, toStartOfTimeline, _removed, data) => {
            if (!toStartOfTimeline && data?.liveEvent !== false) live[name].push({ roomId: room?.roomId, event });
        });
        client.on(RoomMemberEvent.Membership, (_event, member) => {
            memberships[name].push({ roomId: member.roomId, userId: member.userId, membership: member.membership });
        });
    }
    const received = (name, roomId, sender) => live[name]
        .filter((r) => r.roomId === roomId && r.event.getType() === EventType.RoomMessage && r.event.getSender() === sender)
        .map((r) => r.event);

    await step("alice starts syncing on silo 0 (initialSyncLimit 20) and reaches PREPARED/SYNCING",
        () => startSyncing(alice), 35000);
    await step("bob starts syncing on silo 1 and reaches PREPARED/SYNCING", () => startSyncing(bob), 35000);

    const roomId = await step("alice creates a room inviting bob", async () => {
        const { room_id: id } = await alice.createRoom({ invite: [bob.getUserId()], preset: "private_chat" });
        assert(typeof id === "string" && id.startsWith("!"), `room id ${id}`);
        await waitUntil("alice's client to show the room as joined",
            () => alice.getRoom(id)?.getMyMembership() === KnownMembership.Join, 15000,
            () => `membership ${alice.getRoom(id)?.getMyMembership()}`);
        return id;
    }, 20000);

    await step("bob's client sees the invite from alice (RoomMember.membership, Room.myMembership)", async () => {
        await waitUntil("bob's membership to become invite",
            () => bob.getRoom(roomId)?.getMyMembership() === KnownMembership.Invite, 15000,
            () => `rooms ${JSON.stringify(bob.getRooms().map((r) => [r.roomId, r.getMyMembership()]))}`);
        assert(memberships.bob.some((m) => m.roomId === roomId && m.userId === bob.getUserId() && m.membership === "invite"),
            `RoomMember.membership fired for bob's invite: ${JSON.stringify(memberships.bob)}`);
        const inviteEvent = bob.getRoom(roomId).getMember(bob.getUserId())?.events.member;
        assertEqual(inviteEvent?.getSender(), alice.getUserId(), "the invite was sent by alice");
    }, 20000);

    await step("bob joins; both clients see bob as joined", async () => {
        await bob.joinRoom(roomId);
        await waitUntil("bob's client to show the room as joined",
            () => bob.getRoom(roomId)?.getMyMembership() === KnownMembership.Join, 15000);
        await waitUntil("alice's client to show bob as joined",
            () => alice.getRoom(roomId)?.getMember(bob.getUserId())?.membership === KnownMembership.Join, 15000,
            () => `bob's membership at alice: ${alice.getRoom(roomId)?.getMember(bob.getUserId())?.membership}`);
    }, 20000);

    // Sends one at a time (each awaited), so the server's order is the send order.
    const sent = [];
    const send = async (client, body) => {
        const { event_id: eventId } = await client.sendTextMessage(roomId, body);
        assert(eventId?.startsWith("$"), `event id for "${body}": ${eventId}`);
        sent.push({ sender: client.getUserId(), body, eventId });
    };
    const expectArrival = async (receiver, name, sender, bodies) => {
        await waitUntil(`${name} to receive ${bodies.length} messages from ${sender}`,
            () => received(name, roomId, sender).filter((e) => bodies.includes(e.getContent().body)).length >= bodies.length,
            15000, () => JSON.stringify(received(name, roomId, sender).map((e) => e.getContent().body)));
        const got = received(name, roomId, sender).map((e) => e.getContent().body).filter((b) => bodies.includes(b));
        assertEqual(got, bodies, `${name} received ${sender}'s messages once each, in send order`);
    };

    await step("alice sends 10 messages; bob receives them in order", async () => {
        const bodies = Array.from({ length: 10 }, (_, i) => `alice says ${i}`);
        for (const b of bodies) await send(alice, b);
        await expectArrival(bob, "bob", alice.getUserId(), bodies);
    }, 30000);

    await step("bob sends 10 messages; alice receives them in order", async () => {
        const bodies = Array.from({ length: 10 }, (_, i) => `bob says ${i}`);
        for (const b of bodies) await send(bob, b);
        await expectArrival(alice, "alice", bob.getUserId(), bodies);
    }, 30000);

    await step("alternating messages (a, b, a, b, ...) reach both timelines in the same total order", async () => {
        for (let i = 0; i < 4; i++) {
            await send(alice, `ping ${i}`);
            await send(bob, `pong ${i}`);
        }
        const expected = sent.map((s) => s.eventId);
        const timelineIds = (client) => client.getRoom(roomId).getLiveTimeline().getEvents()
            .filter((e) => e.getType() === EventType.RoomMessage).map((e) => e.getId());
        for (const client of [alice, bob]) {
            await waitUntil(`${client.label}'s live timeline to hold all ${expected.length} messages`,
                () => expected.every((id) => timelineIds(client).includes(id)), 15000,
                () => `${timelineIds(client).length} messages`);
            assertEqual(timelineIds(client).filter((id) => expected.includes(id)), expected,
                `${client.label}'s timeline holds the messages in send order`);
        }
    }, 30000);

    await step("each sender's remote echoes (unsigned.transaction_id) settled its pending events: none pending, none twice",
        async () => {
            for (const client of [alice, bob]) {
                const room = client.getRoom(roomId);
                await waitUntil(`${client.label}'s pending events to be matched by their remote echoes`,
                    () => room.getPendingEvents().length === 0, 15000,
                    () => JSON.stringify(room.getPendingEvents().map((e) => [e.getContent().body, e.status])));
                const mine = room.getLiveTimeline().getEvents()
                    .filter((e) => e.getType() === EventType.RoomMessage && e.getSender() === client.getUserId());
                const ids = mine.map((e) => e.getId());
                assertEqual(ids.length, new Set(ids).size, `${client.label}'s timeline has each of its messages once`);
                assertEqual(ids, sent.filter((s) => s.sender === client.getUserId()).map((s) => s.eventId),
                    `${client.label}'s own messages, once each, in send order`);
            }
        });

    await step("alice renames the room and sets a topic; bob's client shows both", async () => {
        await alice.setRoomName(roomId, "E2E room");
        await alice.setRoomTopic(roomId, "end-to-end topic");
        await waitUntil("bob's client to show the new name",
            () => bob.getRoom(roomId)?.name === "E2E room", 15000, () => `name "${bob.getRoom(roomId)?.name}"`);
        await waitUntil("bob's client to show the new topic",
            () => bob.getRoom(roomId)?.currentState.getStateEvents(EventType.RoomTopic, "")?.getContent().topic === "end-to-end topic",
            15000);
    }, 20000);

    await step("bob (power level 0) may not change the name: 403 M_FORBIDDEN", () =>
        expectMatrixError(bob.setRoomName(roomId, "bob's room"), 403, "M_FORBIDDEN", "bob renames the room"));

    await step("two sends with the same transaction id resolve to one event, seen once by bob", async () => {
        const txnId = `e2e-${Date.now()}`;
        const path = `/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${encodeURIComponent(txnId)}`;
        const content = { msgtype: "m.text", body: "sent twice with one txn id" };
        const first = await alice.http.authedRequest(Method.Put, path, undefined, content);
        const second = await alice.http.authedRequest(Method.Put, path, undefined, content);
        assertEqual(second.event_id, first.event_id, "the retry returns the first event id");
        await send(alice, "after the retry");
        await waitUntil("bob to receive the message sent after the retry",
            () => received("bob", roomId, alice.getUserId()).some((e) => e.getContent().body === "after the retry"), 15000);
        const copies = received("bob", roomId, alice.getUserId()).filter((e) => e.getContent().body === content.body);
        assertEqual(copies.map((e) => e.getId()), [first.event_id], "bob received the event once");
        sent.splice(sent.length - 1, 0, { sender: alice.getUserId(), body: content.body, eventId: first.event_id });
    }, 20000);

    // A fresh device sees only the latest events, so the history must come from /messages.
    const bobPhone = await step("bob logs in a second device on silo 0 and syncs with initialSyncLimit 5", async () => {
        const login = await newClient(silo0, "bob-phone(anon)").loginRequest({
            type: "m.login.password", identifier: { type: "m.id.user", user: bob.getUserId() }, password,
        });
        const client = newClient(silo0, "bob-phone", {
            userId: login.user_id, accessToken: login.access_token, deviceId: login.device_id,
        });
        clients.push(client);
        await startSyncing(client, 30000, 5);
        await waitUntil("the room on bob's second device", () => client.getRoom(roomId), 15000);
        return client;
    }, 35000);

    await step("bob's second device back-paginates with scrollback until the start: the whole history, in order", async () => {
        const room = bobPhone.getRoom(roomId);
        const initial = room.getLiveTimeline().getEvents();
        assert(initial.length <= 5 && initial[0]?.getType() !== EventType.RoomCreate,
            `the initial sync is limited to the latest 5 events: ${initial.map((e) => e.getType())}`);
        let scrollbacks = 0;
        while (room.oldState.paginationToken !== null) {
            assert(scrollbacks < 50, "reached the start within 50 scrollbacks");
            await bobPhone.scrollback(room, 7);
            scrollbacks++;
        }
        assert(scrollbacks >= 5, `the history took several pages of 7 (took ${scrollbacks})`);
        const events = room.getLiveTimeline().getEvents();
        const ids = events.map((e) => e.getId());
        assertEqual(events[0]?.getType(), EventType.RoomCreate, "the first event is m.room.create");
        assertEqual(ids.length, new Set(ids).size, "no event twice");
        const messages = events.filter((e) => e.getType() === EventType.RoomMessage).map((e) => e.getId());
        assertEqual(messages, sent.map((s) => s.eventId), "every message, in send order");
        const types = events.map((e) => e.getType());
        for (const t of [EventType.RoomPowerLevels, EventType.RoomJoinRules, EventType.RoomName, EventType.RoomTopic]) {
            assert(types.includes(t), `history includes ${t}`);
        }
        const bobMembership = events.filter((e) => e.getType() === EventType.RoomMember && e.getStateKey() === bob.getUserId())
            .map((e) => e.getContent().membership);
        assertEqual(bobMembership, ["invite", "join"], "bob's invite then join");
        const live = bob.getRoom(roomId).getLiveTimeline().getEvents().map((e) => e.getId());
        assertEqual(ids.slice(-live.length), live, "the paginated history ends with what bob's first device saw live");
    }, 30000);

    await step("raw /messages from the end backwards (limit 7) until `end` is missing gives the same history", async () => {
        const chunks = [];
        let from = null;
        for (let page = 0; ; page++) {
            assert(page < 50, "pagination ended within 50 pages");
            const res = await bob.createMessagesRequest(roomId, from, 7, Direction.Backward);
            assert(Array.isArray(res.chunk), `chunk is an array: ${JSON.stringify(res)}`);
            assert(typeof res.start === "string", `start is a token: ${JSON.stringify(res.start)}`);
            chunks.push(...res.chunk);
            if (!res.end) break;
            assert(res.chunk.length > 0, `a page with \`end\` (${res.end}) has events; an empty last page must omit \`end\``);
            from = res.end;
        }
        const history = chunks.reverse();
        const scrolled = bobPhone.getRoom(roomId).getLiveTimeline().getEvents().map((e) => e.getId());
        assertEqual(history.map((e) => e.event_id), scrolled, "/messages and the scrolled-back timeline agree event for event");
        assertEqual(history[0].type, EventType.RoomCreate, "the oldest event is m.room.create");
    }, 30000);

    await step("bob leaves; alice's client sees bob's membership become leave", async () => {
        await bob.leave(roomId);
        await waitUntil("alice's client to show bob as left",
            () => alice.getRoom(roomId)?.getMember(bob.getUserId())?.membership === KnownMembership.Leave, 15000,
            () => `bob's membership at alice: ${alice.getRoom(roomId)?.getMember(bob.getUserId())?.membership}`);
        assert(memberships.alice.some((m) => m.roomId === roomId && m.userId === bob.getUserId() && m.membership === "leave"),
            "RoomMember.membership fired at alice for bob's leave");
        await waitUntil("bob's client to show the room as left",
            () => bob.getRoom(roomId)?.getMyMembership() === KnownMembership.Leave, 15000,
            () => `bob's membership: ${bob.getRoom(roomId)?.getMyMembership()}`);
    }, 20000);
});

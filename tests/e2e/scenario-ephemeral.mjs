// Issue 4's streams through matrix-js-sdk, clients on both silos: a room found through its alias and the public room
// list; typing seen by the other member; a read receipt seen by the sender; a display-name change shown in the room;
// account data reaching the user's second device; a to-device message reaching one named device and not the other.
// Usage: node scenario-ephemeral.mjs <baseUrlSilo0> <baseUrlSilo1>
import {
    assert, assertEqual, baseUrls, newClient, registerWithDummy, run, sdk, startSyncing, step, uniqueName, waitUntil,
} from "./harness.mjs";

const { ClientEvent, EventType, KnownMembership, RoomEvent, RoomMemberEvent } = sdk;
const [silo0, silo1] = baseUrls(2);

await run("ephemeral", async (clients) => {
    const password = "correct horse battery staple";
    const aliceName = uniqueName("alice");
    const aliceSession = await step("alice registers on silo 0", () => registerWithDummy(silo0, "alice", aliceName, password));
    const bobSession = await step("bob registers on silo 1", () => registerWithDummy(silo1, "bob", uniqueName("bob"), password));
    const alice = newClient(silo0, "alice", aliceSession);
    const bob = newClient(silo1, "bob", bobSession);
    clients.push(alice, bob);

    const typing = [];
    bob.on(RoomMemberEvent.Typing, (_event, member) => typing.push({ userId: member.userId, typing: member.typing }));
    const receipts = [];
    alice.on(RoomEvent.Receipt, (event, room) => receipts.push({ roomId: room.roomId, content: event.getContent() }));

    await step("both clients start syncing", async () => {
        await startSyncing(alice, 30000);
        await startSyncing(bob, 30000);
    }, 65000);

    const aliasLocalpart = uniqueName("lobby");
    const roomName = `Lobby ${aliasLocalpart}`;
    const roomId = await step("alice creates a public room with an alias, published in the directory", async () => {
        const { room_id: id } = await alice.createRoom({
            preset: "public_chat", visibility: "public", room_alias_name: aliasLocalpart, name: roomName,
        });
        return id;
    }, 20000);

    const alias = `#${aliasLocalpart}:${alice.getDomain()}`;
    await step("bob resolves the alias to the room", async () => {
        const resolved = await bob.getRoomIdForAlias(alias);
        assertEqual(resolved.room_id, roomId, "the alias points at the room");
    });

    await step("bob finds the room in the public room list", async () => {
        const list = await bob.publicRooms({ filter: { generic_search_term: aliasLocalpart }, limit: 20 });
        const entry = list.chunk.find((r) => r.room_id === roomId);
        assert(entry, `room in /publicRooms: ${JSON.stringify(list)}`);
        assertEqual(entry.name, roomName, "the directory entry carries the room name");
        assertEqual(entry.canonical_alias, alias, "the directory entry carries the alias");
    });

    await step("bob joins through the alias; alice sees him", async () => {
        await bob.joinRoom(alias);
        await waitUntil("bob joined at bob", () => bob.getRoom(roomId)?.getMyMembership() === KnownMembership.Join, 15000);
        await waitUntil("bob joined at alice",
            () => alice.getRoom(roomId)?.getMember(bob.getUserId())?.membership === KnownMembership.Join, 15000);
    }, 20000);

    await step("alice types; bob sees her typing, then stop", async () => {
        await alice.sendTyping(roomId, true, 20000);
        await waitUntil("bob to see alice typing",
            () => typing.some((t) => t.userId === alice.getUserId() && t.typing), 10000, () => JSON.stringify(typing));
        await alice.sendTyping(roomId, false, 0);
        await waitUntil("bob to see alice stop typing",
            () => bob.getRoom(roomId)?.getMember(alice.getUserId())?.typing === false, 10000, () => JSON.stringify(typing));
    }, 25000);

    await step("alice sends a message; bob reads it; alice sees bob's read receipt", async () => {
        const { event_id: eventId } = await alice.sendTextMessage(roomId, "please read this");
        const event = await waitUntil("bob to receive the message",
            () => bob.getRoom(roomId)?.getLiveTimeline().getEvents().find((e) => e.getId() === eventId), 10000);
        await bob.sendReadReceipt(event);
        await waitUntil("alice to see bob's receipt",
            () => alice.getRoom(roomId)?.getUsersReadUpTo(alice.getRoom(roomId).findEventById(eventId) ?? event)
                ?.includes(bob.getUserId()), 10000, () => JSON.stringify(receipts));
    }, 25000);

    await step("alice changes her display name; bob's client shows it in the room", async () => {
        await alice.setDisplayName("Alice Liddell");
        await waitUntil("bob to show alice's new name",
            () => bob.getRoom(roomId)?.getMember(alice.getUserId())?.name === "Alice Liddell", 10000,
            () => bob.getRoom(roomId)?.getMember(alice.getUserId())?.name);
    }, 20000);

    const aliceSecond = await step("alice logs in a second device on silo 1 and syncs", async () => {
        const login = await newClient(silo1, "alice2(anon)").loginRequest({
            type: "m.login.password", identifier: { type: "m.id.user", user: aliceName }, password,
        });
        const client = newClient(silo1, "alice2", { userId: login.user_id, accessToken: login.access_token, deviceId: login.device_id });
        clients.push(client);
        await startSyncing(client, 30000);
        return client;
    }, 40000);

    await step("account data set on alice's first device reaches her second", async () => {
        const seen = [];
        aliceSecond.on(ClientEvent.AccountData, (event) => seen.push(event.getType()));
        await alice.setAccountData("org.example.e2e", { colour: "teal" });
        await waitUntil("the second device to get the account data",
            () => aliceSecond.getAccountData("org.example.e2e")?.getContent()?.colour === "teal", 10000,
            () => JSON.stringify(seen));
    }, 20000);

    await step("bob sends a to-device message to alice's second device only", async () => {
        const gotFirst = [];
        const gotSecond = [];
        alice.on(ClientEvent.ToDeviceEvent, (e) => gotFirst.push(e));
        aliceSecond.on(ClientEvent.ToDeviceEvent, (e) => gotSecond.push(e));
        const content = new Map([[alice.getUserId(), new Map([[aliceSecond.getDeviceId(), { ping: 42 }]])]]);
        await bob.sendToDevice("org.example.ping", content);
        await waitUntil("alice's second device to receive the to-device message",
            () => gotSecond.some((e) => e.getType() === "org.example.ping" && e.getContent().ping === 42), 10000);
        assertEqual(gotSecond.filter((e) => e.getType() === "org.example.ping").length, 1, "delivered once");
        assertEqual(gotSecond[0].getSender(), bob.getUserId(), "sender is bob");
        await new Promise((r) => setTimeout(r, 500));
        assert(!gotFirst.some((e) => e.getType() === "org.example.ping"), "alice's first device did not get it");
    }, 20000);
});

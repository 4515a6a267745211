// Media and threads through matrix-js-sdk across two silos: alice (silo 0) uploads an image with uploadContent and
// sends it; bob (silo 1) downloads it and a thumbnail through authenticated media; bob replies in a thread with the
// SDK's thread support, alice's client builds the thread (reply count, root's bundled m.thread) and lists it through
// /threads, and both read the thread's relations through the SDK's relations API.
// Usage: node scenario-media-threads.mjs <baseUrlSilo0> <baseUrlSilo1>
import {
    assert, assertEqual, baseUrls, newClient, registerWithDummy, run, sdk, startSyncing, step, uniqueName, waitUntil,
} from "./harness.mjs";

const { Direction, KnownMembership, ThreadFilterType } = sdk;
const [silo0, silo1] = baseUrls(2);

// A 1x1 red PNG.
const png = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==", "base64");

await run("media-threads", async (clients) => {
    const password = "correct horse battery staple";
    const alice = newClient(silo0, "alice", await step("alice registers on silo 0",
        () => registerWithDummy(silo0, "alice", uniqueName("alice"), password)));
    const bob = newClient(silo1, "bob", await step("bob registers on silo 1",
        () => registerWithDummy(silo1, "bob", uniqueName("bob"), password)));
    clients.push(alice, bob);

    await step("both start syncing with thread support", async () => {
        await startSyncing(alice, 30000, 20, { threadSupport: true });
        await startSyncing(bob, 30000, 20, { threadSupport: true });
    }, 40000);

    const roomId = await step("alice creates a public room and bob joins", async () => {
        const { room_id: id } = await alice.createRoom({ preset: "public_chat" });
        await bob.joinRoom(id);
        await waitUntil("alice to see bob joined", () => alice.getRoom(id)?.getMember(bob.getUserId())?.membership === KnownMembership.Join, 15000);
        return id;
    }, 20000);

    const mxc = await step("alice uploads an image with uploadContent and sends it", async () => {
        const { content_uri: uri } = await alice.uploadContent(png, { name: "dot.png", type: "image/png" });
        assert(uri?.startsWith("mxc://"), `content_uri ${uri}`);
        await alice.sendMessage(roomId, { msgtype: "m.image", body: "dot.png", url: uri, info: { mimetype: "image/png", size: png.length } });
        return uri;
    });

    await step("bob receives the image event and downloads it through authenticated media on silo 1", async () => {
        await waitUntil("bob to receive the image", () => bob.getRoom(roomId)?.getLiveTimeline().getEvents()
            .some((e) => e.getContent().url === mxc), 15000);
        const url = bob.mxcUrlToHttp(mxc, undefined, undefined, undefined, false, true, true);
        assert(url?.includes("/_matrix/client/v1/media/download/"), `authenticated download URL ${url}`);
        const response = await fetch(url, { headers: { Authorization: `Bearer ${bob.getAccessToken()}` } });
        assertEqual(response.status, 200, "download status");
        assertEqual(response.headers.get("content-type"), "image/png", "download content type");
        assertEqual(Buffer.from(await response.arrayBuffer()).equals(png), true, "downloaded bytes are the uploaded ones");
        const thumb = await fetch(bob.mxcUrlToHttp(mxc, 32, 32, "crop", false, true, true),
            { headers: { Authorization: `Bearer ${bob.getAccessToken()}` } });
        assertEqual([thumb.status, thumb.headers.get("content-type")], [200, "image/png"], "thumbnail");
        const anonymous = await fetch(url);
        assertEqual(anonymous.status, 401, "authenticated media without a token");
    });

    const rootId = await step("alice sends a thread root; bob replies twice in the thread", async () => {
        const { event_id: root } = await alice.sendTextMessage(roomId, "what do you think?");
        await waitUntil("bob to receive the root", () => !!bob.getRoom(roomId)?.findEventById(root), 15000);
        await bob.sendMessage(roomId, root, { msgtype: "m.text", body: "first reply" });
        await bob.sendMessage(roomId, root, { msgtype: "m.text", body: "second reply" });
        return root;
    }, 25000);

    await step("alice's client builds the thread: two replies, the root's bundled m.thread from the server", async () => {
        await waitUntil("alice's client to hold the thread with two replies",
            () => alice.getRoom(roomId)?.getThread(rootId)?.length === 2, 15000,
            () => `thread length ${alice.getRoom(roomId)?.getThread(rootId)?.length}`);
        const root = await alice.fetchRoomEvent(roomId, rootId);
        const bundled = root.unsigned?.["m.relations"]?.["m.thread"];
        assertEqual(bundled?.count, 2, "bundled thread count");
        assertEqual(bundled?.latest_event?.content?.body, "second reply", "bundled latest reply");
        assertEqual(bundled?.current_user_participated, true, "alice took part: she sent the root");
    }, 20000);

    await step("the thread list (/threads) names the thread, for all and for bob's participated", async () => {
        const all = await alice.createThreadListMessagesRequest(roomId, null, 10, Direction.Backward, ThreadFilterType.All);
        assertEqual(all.chunk.map((e) => e.event_id), [rootId], "all threads");
        const mine = await bob.createThreadListMessagesRequest(roomId, null, 10, Direction.Backward, ThreadFilterType.My);
        assertEqual(mine.chunk.map((e) => e.event_id), [rootId], "bob's threads");
        const started = await alice.createThreadListMessagesRequest(roomId, null, 10, Direction.Backward, ThreadFilterType.My);
        assertEqual(started.chunk.map((e) => e.event_id), [rootId], "alice's threads (she started it)");
    });

    await step("the relations API pages the thread's replies, oldest first forwards", async () => {
        const page = await bob.fetchRelations(roomId, rootId, "m.thread", null, { dir: Direction.Forward, limit: 1 });
        assertEqual(page.chunk.map((e) => e.content.body), ["first reply"], "first page");
        assert(page.next_batch, "a next_batch while more remain");
        const rest = await bob.fetchRelations(roomId, rootId, "m.thread", null, { dir: Direction.Forward, from: page.next_batch });
        assertEqual(rest.chunk.map((e) => e.content.body), ["second reply"], "second page");
    });
});

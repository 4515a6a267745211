// An encrypted room between two matrix-js-sdk clients with the SDK's Rust crypto (matrix-sdk-crypto-wasm), alice on
// silo 0 and bob on silo 1. Each device uploads its keys, finds the other's through /keys/query, the sender claims a
// one-time key (/keys/claim), opens an Olm session and shares its Megolm session as an encrypted to-device message
// (/sendToDevice); the message goes through the server as m.room.encrypted and each side decrypts the other's.
// The crypto store is in memory (`useIndexedDB: false`), so no IndexedDB is needed under Node.
// Usage: node scenario-encrypted.mjs <baseUrlSilo0> <baseUrlSilo1>
import {
    assert, assertEqual, baseUrls, newClient, registerWithDummy, requestsMade, run, sdk, startSyncing, step, uniqueName,
    waitUntil,
} from "./harness.mjs";

const { KnownMembership, MatrixEventEvent } = sdk;
const [silo0, silo1] = baseUrls(2);
const megolm = "m.megolm.v1.aes-sha2";

await run("encrypted", async (clients) => {
    const password = "correct horse battery staple";
    const aliceSession = await step("alice registers on silo 0", () => registerWithDummy(silo0, "alice", uniqueName("alice"), password));
    const bobSession = await step("bob registers on silo 1", () => registerWithDummy(silo1, "bob", uniqueName("bob"), password));
    const alice = newClient(silo0, "alice", aliceSession);
    const bob = newClient(silo1, "bob", bobSession);
    clients.push(alice, bob);

    // Every decryption outcome, to explain a wait that times out.
    const decryptions = [];
    for (const client of [alice, bob]) {
        client.on(MatrixEventEvent.Decrypted, (event, err) => decryptions.push(
            `${client.label}: ${event.getId()} ${event.getType()} ${err ? `error ${err.message}` : event.decryptionFailureReason ?? "ok"}`));
    }

    await step("both clients initialise the Rust crypto (in-memory store)", async () => {
        await alice.initRustCrypto({ useIndexedDB: false });
        await bob.initRustCrypto({ useIndexedDB: false });
        for (const client of [alice, bob]) {
            const crypto = client.getCrypto();
            assert(crypto, `${client.label} has a CryptoApi after initRustCrypto`);
            // The devices are never verified: messages must still go to them.
            assertEqual(crypto.globalBlacklistUnverifiedDevices, false, `${client.label} sends to unverified devices`);
        }
    }, 30000);

    await step("both clients start syncing", async () => {
        await startSyncing(alice, 30000);
        await startSyncing(bob, 30000);
    }, 65000);

    await step("each device has uploaded its keys and sees the other's through /keys/query", async () => {
        for (const [self, other] of [[alice, bob], [bob, alice]]) {
            const device = await waitUntil(`${self.label} to see ${other.label}'s device ${other.getDeviceId()}`, async () => {
                const devices = await self.getCrypto().getUserDeviceInfo([other.getUserId()], true);
                return devices.get(other.getUserId())?.get(other.getDeviceId());
            }, 15000);
            const ownKeys = await other.getCrypto().getOwnDeviceKeys();
            assertEqual([device.getIdentityKey(), device.getFingerprint()], [ownKeys.curve25519, ownKeys.ed25519],
                `${self.label} has ${other.label}'s curve25519 and ed25519 keys as ${other.label} uploaded them`);
            assert(device.algorithms.includes(megolm), `${other.label}'s device supports ${megolm}: ${device.algorithms}`);
        }
    }, 35000);

    const roomId = await step("alice creates an encrypted room and invites bob", async () => {
        const { room_id: id } = await alice.createRoom({
            name: "Secrets",
            invite: [bob.getUserId()],
            initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: megolm } }],
        });
        return id;
    }, 20000);

    await step("bob joins; both clients see the room as encrypted with megolm", async () => {
        await waitUntil("bob to see the invite", () => bob.getRoom(roomId)?.getMyMembership() === KnownMembership.Invite, 15000);
        await bob.joinRoom(roomId);
        await waitUntil("bob joined at bob", () => bob.getRoom(roomId)?.getMyMembership() === KnownMembership.Join, 15000);
        await waitUntil("bob joined at alice",
            () => alice.getRoom(roomId)?.getMember(bob.getUserId())?.membership === KnownMembership.Join, 15000);
        for (const client of [alice, bob]) {
            await waitUntil(`${client.label}'s crypto to treat the room as encrypted`,
                () => client.getCrypto().isEncryptionEnabledInRoom(roomId), 10000);
            const state = client.getRoom(roomId).currentState.getStateEvents("m.room.encryption", "");
            assertEqual(state?.getContent().algorithm, megolm, `${client.label}'s m.room.encryption algorithm`);
        }
    }, 40000);

    /** Sends `text` from `sender`; waits for `receiver` to hold it as a decrypted m.room.encrypted event. */
    async function sendAndDecrypt(sender, receiver, text) {
        const { event_id: eventId } = await sender.sendTextMessage(roomId, text);

        // What the server holds and serves is ciphertext, not the text.
        const raw = await receiver.fetchRoomEvent(roomId, eventId);
        assertEqual(raw.type, "m.room.encrypted", "the event's type on the server");
        assertEqual(raw.content.algorithm, megolm, "the event's algorithm on the server");
        assert(typeof raw.content.ciphertext === "string" && !raw.content.ciphertext.includes(text) && raw.content.body === undefined,
            `the server holds ciphertext only: ${JSON.stringify(raw.content).slice(0, 200)}`);

        const event = await waitUntil(`${receiver.label} to receive the event ${eventId}`,
            () => receiver.getRoom(roomId)?.getLiveTimeline().getEvents().find((e) => e.getId() === eventId), 15000);
        assertEqual(event.getWireType(), "m.room.encrypted", `${receiver.label} received it encrypted`);
        await waitUntil(`${receiver.label} to decrypt ${eventId}`,
            () => !event.isBeingDecrypted() && !event.isDecryptionFailure() && event.getClearContent()?.body === text,
            20000, () => `type=${event.getType()} failure=${event.decryptionFailureReason} clear=${JSON.stringify(event.getClearContent())}`
                + ` decryptions=[${decryptions.join("; ")}]`);
        assertEqual([event.getType(), event.getContent().msgtype, event.getContent().body], ["m.room.message", "m.text", text],
            `${receiver.label}'s decrypted event`);
        assertEqual(event.getSender(), sender.getUserId(), "sender");

        // The Megolm session key can only have reached the receiver's device through an Olm session, over to-device.
        assert(requestsMade(sender.label, "PUT", /\/sendToDevice\/m\.room\.encrypted\//).some((r) => r.status === 200),
            `${sender.label} shared the room key with a to-device m.room.encrypted`);
    }

    await step("alice sends an encrypted message; bob's client decrypts it", async () => {
        await sendAndDecrypt(alice, bob, "the eagle lands at midnight");
        // With no Olm session yet, alice's device needed one of bob's one-time keys to open one.
        assert(requestsMade("alice", "POST", /\/keys\/claim$/).some((r) => r.status === 200),
            "alice claimed a one-time key of bob's device");
    }, 40000);

    await step("bob replies encrypted; alice's client decrypts it", async () => {
        // Bob may reuse the Olm session alice opened; his own Megolm session still has to reach her over to-device.
        await sendAndDecrypt(bob, alice, "understood, bring the cake");
    }, 40000);
});

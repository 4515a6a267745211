"""matrix-nio (Debian's python3-matrix-nio, 0.20) against the server on its default r0 paths.

Usage: python3 nio_flow.py <base url A> <base url B> <store folder>
Prints one line per step; exits non-zero at the first step that fails. Two users on two front ends: register (nio
logs in with the answer), upload device keys, create a room, invite and join, send, read history with
/messages, then an encrypted room in which each side decrypts the other's message.
"""
import asyncio
import sys
import uuid

from nio import (AsyncClient, AsyncClientConfig, JoinResponse, MegolmEvent, RegisterResponse, RoomCreateResponse,
                 RoomEncryptionEvent, RoomInviteResponse, RoomMessagesResponse, RoomMessageText, RoomSendResponse)

PASSWORD = "correct horse battery staple"
step_number = 0


def step(text):
    global step_number
    step_number += 1
    print(f"step {step_number}: {text}", flush=True)


def require(condition, message):
    if not condition:
        raise AssertionError(message)


async def new_user(url, store):
    config = AsyncClientConfig(encryption_enabled=True, store_sync_tokens=True)
    name = f"nio{uuid.uuid4().hex[:10]}"
    client = AsyncClient(url, name, store_path=store, config=config)
    response = await client.register(name, PASSWORD, f"{name}-device")
    require(isinstance(response, RegisterResponse), f"register {name}: {response}")
    # r0 is what nio 0.20 calls: the register above went to /_matrix/client/r0/register.
    require(client.access_token, "no access token after register")
    client.load_store()
    return client


async def sync_until(client, predicate, what, rounds=20):
    for _ in range(rounds):
        await client.sync(timeout=3000, full_state=False)
        if predicate():
            return
    raise AssertionError(f"{client.user_id}: never saw {what}")


async def main():
    url_a, url_b, store = sys.argv[1], sys.argv[2], sys.argv[3]
    alice = await new_user(url_a, store)
    bob = await new_user(url_b, store)
    step(f"registered {alice.user_id} on A and {bob.user_id} on B over r0")
    try:
        await alice.sync(timeout=0)
        await bob.sync(timeout=0)
        if alice.should_upload_keys:
            require((await alice.keys_upload()).__class__.__name__ == "KeysUploadResponse", "alice keys upload failed")
        if bob.should_upload_keys:
            require((await bob.keys_upload()).__class__.__name__ == "KeysUploadResponse", "bob keys upload failed")
        step("device keys uploaded")

        created = await alice.room_create(name="nio plain")
        require(isinstance(created, RoomCreateResponse), f"createRoom: {created}")
        room = created.room_id
        require(isinstance(await alice.room_invite(room, bob.user_id), RoomInviteResponse), "invite failed")
        await sync_until(bob, lambda: room in bob.invited_rooms, "the invite")
        require(isinstance(await bob.join(room), JoinResponse), "join failed")
        # nio sends only into rooms its own sync has shown it.
        await sync_until(alice, lambda: room in alice.rooms and bob.user_id in alice.rooms[room].users, "bob in the room")
        step("room created, bob invited and joined")

        sent = await alice.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "hello over r0"})
        require(isinstance(sent, RoomSendResponse), f"send: {sent}")
        seen = []
        bob.add_event_callback(lambda r, e: seen.append(e.body), RoomMessageText)
        await sync_until(bob, lambda: "hello over r0" in seen, "alice's message")
        step("bob received alice's message by /sync")

        history = await bob.room_messages(room, start=bob.next_batch, limit=20)
        require(isinstance(history, RoomMessagesResponse), f"/messages: {history}")
        bodies = [e.body for e in history.chunk if isinstance(e, RoomMessageText)]
        require("hello over r0" in bodies, f"history lacks the message: {bodies}")
        step("history read with /messages")

        created = await alice.room_create(name="nio encrypted", initial_state=[
            {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}])
        require(isinstance(created, RoomCreateResponse), f"createRoom (encrypted): {created}")
        secret_room = created.room_id
        require(isinstance(await alice.room_invite(secret_room, bob.user_id), RoomInviteResponse), "invite (encrypted) failed")
        await sync_until(bob, lambda: secret_room in bob.invited_rooms, "the encrypted room's invite")
        require(isinstance(await bob.join(secret_room), JoinResponse), "join (encrypted) failed")
        await sync_until(alice, lambda: secret_room in alice.rooms and bob.user_id in alice.rooms[secret_room].users,
                         "bob in the encrypted room")
        require(alice.rooms[secret_room].encrypted, "the room is not marked encrypted")
        step("encrypted room created and joined")

        # Trust each other's devices (nio refuses to encrypt for unverified devices unless told to ignore them).
        sent = await alice.room_send(secret_room, "m.room.message", {"msgtype": "m.text", "body": "secret from alice"},
                                     ignore_unverified_devices=True)
        require(isinstance(sent, RoomSendResponse), f"encrypted send: {sent}")
        decrypted = []
        undecrypted = []
        bob.add_event_callback(lambda r, e: decrypted.append(e.body) if r.room_id == secret_room else None, RoomMessageText)
        bob.add_event_callback(lambda r, e: undecrypted.append(e.session_id), MegolmEvent)
        await sync_until(bob, lambda: "secret from alice" in decrypted, f"alice's message decrypted (undecrypted: {undecrypted})")
        step("bob decrypted alice's message")

        sent = await bob.room_send(secret_room, "m.room.message", {"msgtype": "m.text", "body": "secret from bob"},
                                   ignore_unverified_devices=True)
        require(isinstance(sent, RoomSendResponse), f"encrypted send (bob): {sent}")
        back = []
        alice.add_event_callback(lambda r, e: back.append(e.body) if r.room_id == secret_room else None, RoomMessageText)
        await sync_until(alice, lambda: "secret from bob" in back, "bob's message decrypted")
        step("alice decrypted bob's message")
    finally:
        await alice.close()
        await bob.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as e:  # a failed step: say which, and exit non-zero
        print(f"FAILED after step {step_number}: {type(e).__name__}: {e}", flush=True)
        sys.exit(1)

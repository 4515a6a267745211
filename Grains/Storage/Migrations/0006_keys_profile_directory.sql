-- End-to-end keys, device list changes, profiles and the room directory.

-- A device's identity keys as uploaded (canonical JSON). Written by the device_lists persisters together with the
-- stream row announcing the change.
CREATE TABLE e2e_device_keys (
    user_id   text NOT NULL,
    device_id text NOT NULL,
    key_json  text NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

-- One-time keys are claimed (deleted) one at a time; per-device counts go into every /sync.
CREATE TABLE e2e_one_time_keys (
    user_id   text NOT NULL,
    device_id text NOT NULL,
    algorithm text NOT NULL,
    key_id    text NOT NULL,
    key_json  text NOT NULL,
    PRIMARY KEY (user_id, device_id, algorithm, key_id)
);

-- At most one fallback key per device and algorithm; handed out (and marked used) when no one-time key is left.
CREATE TABLE e2e_fallback_keys (
    user_id   text    NOT NULL,
    device_id text    NOT NULL,
    algorithm text    NOT NULL,
    key_id    text    NOT NULL,
    key_json  text    NOT NULL,
    used      boolean NOT NULL DEFAULT false,
    PRIMARY KEY (user_id, device_id, algorithm)
);

-- Cross-signing keys: 'master', 'self_signing', 'user_signing'.
CREATE TABLE e2e_cross_signing_keys (
    user_id  text NOT NULL,
    key_type text NOT NULL,
    key_json text NOT NULL,
    PRIMARY KEY (user_id, key_type)
);

-- Signatures uploaded through /keys/signatures/upload, merged into the signed key when it is served. target_id is a
-- device id or a cross-signing public key.
CREATE TABLE e2e_signatures (
    signer_user_id text NOT NULL,
    signer_key_id  text NOT NULL,
    target_user_id text NOT NULL,
    target_id      text NOT NULL,
    signature      text NOT NULL,
    PRIMARY KEY (target_user_id, target_id, signer_user_id, signer_key_id)
);

-- Whose device list changed at which device_lists position. only_for limits a change to one user's view (a
-- signature made with their user-signing key concerns nobody else).
CREATE TABLE device_list_changes (
    position bigint NOT NULL,
    user_id  text   NOT NULL,
    only_for text
);
CREATE INDEX device_list_changes_position ON device_list_changes (position);

-- Display name and avatar. A user without a row has the defaults (display name = localpart).
CREATE TABLE profiles (
    user_id     text PRIMARY KEY,
    displayname text,
    avatar_url  text
);

-- Room directory visibility set through /directory/list/room; rooms without a row use rooms.is_public (createRoom).
CREATE TABLE room_directory (
    room_id    text    PRIMARY KEY,
    is_public  boolean NOT NULL
);

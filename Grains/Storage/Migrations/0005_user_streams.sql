-- Per-user and ephemeral streams: push rules, account data, to-device, receipts and presence. Every row here is
-- written by the persister of the stream row that describes it, in the same transaction, and carries that row's
-- position so /sync can ask "what changed in (since, to]". Typing has no table: it lives in memory.

-- The user's own rules and their changes to server-default rules, as one document per user (the whole ruleset is
-- small and always read and delivered whole).
CREATE TABLE push_rules (
    user_id         text   PRIMARY KEY,
    rules           text   NOT NULL,
    stream_position bigint NOT NULL
);

-- Global account data has room_id ''.
CREATE TABLE account_data (
    user_id         text   NOT NULL,
    room_id         text   NOT NULL,
    type            text   NOT NULL,
    content         text   NOT NULL,
    stream_position bigint NOT NULL,
    PRIMARY KEY (user_id, room_id, type)
);
CREATE INDEX account_data_by_position ON account_data (user_id, stream_position);

-- A queue per device: a message stays until a /sync of that device arrives with a since token past its position.
CREATE TABLE device_inbox (
    user_id         text   NOT NULL,
    device_id       text   NOT NULL,
    stream_position bigint NOT NULL,
    sender          text   NOT NULL,
    type            text   NOT NULL,
    content         text   NOT NULL,
    PRIMARY KEY (user_id, device_id, stream_position)
);

-- Transaction ids of sendToDevice, so a retried request is not delivered twice.
CREATE TABLE to_device_txns (
    user_id    text        NOT NULL,
    device_id  text        NOT NULL,
    txn_id     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, device_id, txn_id)
);

-- The latest receipt per (room, type, user, thread); thread_id '' is the unthreaded receipt.
CREATE TABLE receipts (
    room_id         text   NOT NULL,
    receipt_type    text   NOT NULL,
    user_id         text   NOT NULL,
    thread_id       text   NOT NULL,
    event_id        text   NOT NULL,
    ts              bigint NOT NULL,
    stream_position bigint NOT NULL,
    PRIMARY KEY (room_id, receipt_type, user_id, thread_id)
);
CREATE INDEX receipts_by_position ON receipts (room_id, stream_position);

CREATE TABLE presence (
    user_id          text    PRIMARY KEY,
    state            text    NOT NULL,
    status_msg       text,
    last_active_ts   bigint  NOT NULL,
    currently_active boolean NOT NULL,
    stream_position  bigint  NOT NULL
);

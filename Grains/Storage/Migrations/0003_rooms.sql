-- Rooms and their events. Every row here is written by the room_event persister in the same transaction as the
-- events stream row that describes it, so a reader that reached a stream position sees exactly these rows.

CREATE TABLE rooms (
    room_id      text        PRIMARY KEY,
    room_version text        NOT NULL,
    creator      text        NOT NULL,
    is_public    boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- One row per event. 'topological' is the room's own sequence (= depth): histories are linear, so it orders
-- /messages; (stream_writer, stream_position) orders /sync. 'json' is the event as served (redacted in place, with
-- unsigned.redacted_because); device_id and txn_id let /sync give the sender's device its transaction_id back.
CREATE TABLE events (
    event_id         text    PRIMARY KEY,
    room_id          text    NOT NULL,
    stream_writer    integer NOT NULL,
    stream_position  bigint  NOT NULL,
    topological      bigint  NOT NULL,
    type             text    NOT NULL,
    state_key        text,
    sender           text    NOT NULL,
    origin_server_ts bigint  NOT NULL,
    json             text    NOT NULL,
    device_id        text,
    txn_id           text,
    redacted_because text
);

-- Unique so that a second activation of a room grain, building on stale state, fails instead of forking the room.
CREATE UNIQUE INDEX events_room_topological ON events (room_id, topological);
CREATE INDEX events_stream ON events (stream_position);
CREATE INDEX events_room_stream ON events (room_id, stream_position);
-- State at a point: the latest state event per (type, state_key) at or below a topological position.
CREATE INDEX events_room_state ON events (room_id, type, state_key, topological) WHERE state_key IS NOT NULL;

CREATE TABLE room_current_state (
    room_id   text NOT NULL,
    type      text NOT NULL,
    state_key text NOT NULL,
    event_id  text NOT NULL,
    PRIMARY KEY (room_id, type, state_key)
);

-- The current membership of each user in each room (a user's room list comes from here).
CREATE TABLE room_memberships (
    room_id         text    NOT NULL,
    user_id         text    NOT NULL,
    membership      text    NOT NULL,
    event_id        text    NOT NULL,
    sender          text    NOT NULL,
    stream_writer   integer NOT NULL,
    stream_position bigint  NOT NULL,
    topological     bigint  NOT NULL,
    forgotten       boolean NOT NULL DEFAULT false,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_memberships_user ON room_memberships (user_id, membership);

-- Every membership change, for /sync (rooms that were joined, left or invited between two tokens) and for
-- history visibility.
CREATE TABLE room_membership_history (
    room_id         text    NOT NULL,
    user_id         text    NOT NULL,
    membership      text    NOT NULL,
    event_id        text    NOT NULL PRIMARY KEY,
    sender          text    NOT NULL,
    stream_writer   integer NOT NULL,
    stream_position bigint  NOT NULL,
    topological     bigint  NOT NULL
);
CREATE INDEX room_membership_history_user ON room_membership_history (user_id, stream_writer, stream_position);
CREATE INDEX room_membership_history_room ON room_membership_history (room_id, user_id, topological);

-- Idempotent sends: a retried PUT with the same transaction id returns the first event. Scoped by room as well as
-- device, as Synapse's transaction cache is keyed by request path.
CREATE TABLE event_txn_ids (
    user_id   text        NOT NULL,
    device_id text        NOT NULL,
    room_id   text        NOT NULL,
    txn_id    text        NOT NULL,
    event_id  text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, device_id, room_id, txn_id)
);

CREATE TABLE room_aliases (
    alias      text        PRIMARY KEY,
    room_id    text        NOT NULL,
    creator    text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX room_aliases_room ON room_aliases (room_id);

-- The rooms half of the Synapse-compatible admin API: event and room reports, blocked rooms and room deletions.

-- Reports of events by users (Synapse's event_reports; client POST /rooms/{roomId}/report/{eventId}). Kept when the
-- room is purged, as Synapse keeps them; the admin listing then shows them without the room's name and alias.
CREATE TABLE event_reports (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_ts bigint NOT NULL,
    room_id     text   NOT NULL,
    event_id    text   NOT NULL,
    user_id     text   NOT NULL,
    reason      text,
    score       bigint
);
CREATE INDEX event_reports_received ON event_reports (received_ts);

-- Reports of whole rooms (spec v1.13, POST /rooms/{roomId}/report; Synapse's room_reports), kept the same way.
CREATE TABLE room_reports (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_ts bigint NOT NULL,
    room_id     text   NOT NULL,
    user_id     text   NOT NULL,
    reason      text   NOT NULL
);

-- Rooms nobody on this server may join or be invited to (Synapse's blocked_rooms), with the admin who blocked them.
-- A room can be blocked before this server knows it.
CREATE TABLE blocked_rooms (
    room_id    text        PRIMARY KEY,
    user_id    text        NOT NULL,
    blocked_at timestamptz NOT NULL DEFAULT now()
);

-- Room deletions (DELETE /_synapse/admin/v2/rooms/{roomId}): what was asked, how far it got and how it ended, so that
-- the status can be read on any front end and an interrupted deletion resumes where it stopped. status is Synapse's:
-- scheduled, active, complete, failed; result is the shutdown_room object as JSON.
CREATE TABLE room_deletions (
    delete_id  text        PRIMARY KEY,
    room_id    text        NOT NULL,
    status     text        NOT NULL,
    params     text        NOT NULL,
    result     text        NOT NULL,
    error      text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX room_deletions_room ON room_deletions (room_id, created_at);

-- Server-side key backups: versions per user (numbered from 1, never reused, deleted ones kept as tombstones so a
-- number is never handed out twice) and the room keys under each. The etag moves whenever a version's keys change.

CREATE TABLE room_key_backup_versions (
    user_id   text    NOT NULL,
    version   bigint  NOT NULL,
    algorithm text    NOT NULL,
    auth_data text    NOT NULL,
    etag      bigint  NOT NULL DEFAULT 0,
    deleted   boolean NOT NULL DEFAULT false,
    PRIMARY KEY (user_id, version)
);

CREATE TABLE room_key_backups (
    user_id             text    NOT NULL,
    version             bigint  NOT NULL,
    room_id             text    NOT NULL,
    session_id          text    NOT NULL,
    first_message_index bigint  NOT NULL,
    forwarded_count     bigint  NOT NULL,
    is_verified         boolean NOT NULL,
    session_data        text    NOT NULL,
    PRIMARY KEY (user_id, version, room_id, session_id)
);

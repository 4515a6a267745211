-- Accounts: users, their devices and the access tokens of those devices. Tokens are stored only as SHA-256 hashes,
-- so a database leak does not leak usable credentials.

CREATE TABLE users (
    user_id       text        PRIMARY KEY,
    password_hash text,
    is_guest      boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE devices (
    user_id      text        NOT NULL REFERENCES users (user_id),
    device_id    text        NOT NULL,
    display_name text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, device_id)
);

CREATE TABLE access_tokens (
    token_hash bytea       PRIMARY KEY,
    user_id    text        NOT NULL,
    device_id  text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id)
);

CREATE INDEX access_tokens_by_device ON access_tokens (user_id, device_id);

-- User-interactive authentication sessions. A session is bound to what it authorises (registration, or an
-- operation of one user) so a session opened for one purpose can't complete another.
CREATE TABLE uia_sessions (
    session_id text        PRIMARY KEY,
    purpose    text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

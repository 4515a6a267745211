-- Synapse's admin API for users: an account's user type (Synapse's users.user_type: null, "bot" or "support"), and
-- the nonces of shared-secret registration (GET /_synapse/admin/v1/register). Nonces live in the database so that a
-- nonce issued by one front end is accepted by any other; each is used once (deleted when used) and expires.
ALTER TABLE users ADD COLUMN user_type text;

CREATE TABLE registration_nonces (
    nonce      text        PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- OpenID tokens (spec: "OpenID"): a user proves who they are to a third party, which asks this server's federation
-- API. Short-lived; only their hash is stored, like access tokens'.
CREATE TABLE openid_tokens (
    token_hash bytea       PRIMARY KEY,
    user_id    text        NOT NULL REFERENCES users (user_id),
    expires_at timestamptz NOT NULL
);

-- User-interactive authentication sessions remember what they were started for and what they did: the first request's
-- parameters (a later stage may send only `auth`), whether the stages are done (re-submitting a completed session
-- repeats the operation's answer instead of failing), and the operation's result (for registration: the user id).
-- `purpose` now names the method and path (and the user) the session was opened on: another request is 403.
ALTER TABLE uia_sessions
    ADD COLUMN params    jsonb,
    ADD COLUMN completed boolean NOT NULL DEFAULT false,
    ADD COLUMN result    text;

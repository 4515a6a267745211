-- Pushers (spec: "Push notifications"): where a user's devices want notifications sent. Each pusher is one more reader
-- of the events stream: stream_position is how far it has delivered (every event at or below it was pushed or needed
-- no push), moved only forward and only by the delivery that read from it, so a silo lost mid-delivery makes the next
-- one resend at most what was in flight. device_id ties a pusher to the access token that created it: removing the
-- device (logout, password change, deactivation) removes its pushers, as Synapse does.
CREATE TABLE pushers (
    user_id             text   NOT NULL,
    app_id              text   NOT NULL,
    pushkey             text   NOT NULL,
    kind                text   NOT NULL,
    app_display_name    text   NOT NULL,
    device_display_name text   NOT NULL,
    profile_tag         text,
    lang                text   NOT NULL,
    data                text   NOT NULL,
    device_id           text,
    pushkey_ts          bigint NOT NULL,
    stream_position     bigint NOT NULL,
    PRIMARY KEY (user_id, app_id, pushkey)
);
-- Setting a pusher without append removes the same app_id and pushkey of every other user.
CREATE INDEX pushers_app_pushkey ON pushers (app_id, pushkey);

-- Filters are stored exactly as the client sent them (matrix-js-sdk compares what it gets back with what it sent).
CREATE TABLE user_filters (
    user_id   text   NOT NULL,
    filter_id bigint NOT NULL GENERATED ALWAYS AS IDENTITY,
    json      text   NOT NULL,
    PRIMARY KEY (user_id, filter_id)
);

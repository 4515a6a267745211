-- Server-side search (spec "Server Side Search"): one row per searchable event (a message's body, a room's name or
-- topic), its text as a tsvector computed by PostgreSQL in the event's own transaction, so an event is searchable as
-- soon as it is readable. Kept apart from events (as Synapse's event_search) so that events without text cost
-- nothing and the GIN index holds only what can match. A redaction deletes the row.
CREATE TABLE event_search (
    event_id         text     PRIMARY KEY,
    room_id          text     NOT NULL,
    key              text     NOT NULL,
    vector           tsvector NOT NULL,
    sender           text     NOT NULL,
    type             text     NOT NULL,
    topological      bigint   NOT NULL,
    stream_position  bigint   NOT NULL,
    origin_server_ts bigint   NOT NULL
);

-- GIN's pending list keeps inserts cheap on the send path; searches merge it.
CREATE INDEX event_search_vector ON event_search USING gin (vector);
CREATE INDEX event_search_room_recent ON event_search (room_id, stream_position);

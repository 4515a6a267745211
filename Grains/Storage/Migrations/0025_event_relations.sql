-- Relations between events (spec "Forming relationships between events": m.relates_to with a rel_type and an event_id):
-- threads, edits, references, annotations. Written by the room_event persister with the event; a redaction removes the
-- redacted event's row, so a redacted reply leaves its thread and a redacted edit stops counting.
CREATE TABLE event_relations (
    event_id        text   PRIMARY KEY,
    relates_to_id   text   NOT NULL,
    rel_type        text   NOT NULL,
    -- m.annotation's key (a reaction's emoji).
    aggregation_key text,
    room_id         text   NOT NULL,
    type            text   NOT NULL,
    sender          text   NOT NULL,
    topological     bigint NOT NULL
);

-- The children of an event, by kind, in room order (GET /relations, the bundled aggregations).
CREATE INDEX event_relations_parent ON event_relations (relates_to_id, rel_type, topological);
-- A room's threads by their latest reply (GET /threads).
CREATE INDEX event_relations_room_threads ON event_relations (room_id, relates_to_id, topological) WHERE rel_type = 'm.thread';

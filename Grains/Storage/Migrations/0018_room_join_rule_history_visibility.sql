-- The room's current join rule and history visibility, beside its row: the user directory shows everyone joined to a
-- room anyone may join or read (join rule public or world-readable history, as Synapse's users_in_public_rooms
-- counts), and reading those out of each room's current state events on every search parsed every room's JSON.
-- RoomEventPersister writes both in the transaction that writes room_current_state, so they are never behind it.
-- The backfill reads with client_jsonb: an event whose text jsonb cannot hold leaves NULL, not public, as the search
-- that read those events before this column treated it.
ALTER TABLE rooms ADD COLUMN join_rule text, ADD COLUMN history_visibility text;

UPDATE rooms r SET join_rule = client_jsonb(e.json) -> 'content' ->> 'join_rule'
  FROM room_current_state s JOIN events e ON e.event_id = s.event_id
 WHERE s.room_id = r.room_id AND s.type = 'm.room.join_rules' AND s.state_key = '';

UPDATE rooms r SET history_visibility = client_jsonb(e.json) -> 'content' ->> 'history_visibility'
  FROM room_current_state s JOIN events e ON e.event_id = s.event_id
 WHERE s.room_id = r.room_id AND s.type = 'm.room.history_visibility' AND s.state_key = '';

-- The search starts from these few rooms; the predicate must stay word for word the one UserDirectoryStore uses.
CREATE INDEX rooms_open_to_everyone ON rooms (room_id) WHERE join_rule = 'public' OR history_visibility = 'world_readable';

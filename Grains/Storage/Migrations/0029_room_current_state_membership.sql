-- Each current member event's membership beside it in the room's current state, so that loading a room's state into a
-- silo's cache (CurrentRoomState: its joined and invited members) parses no member event's JSON. A full-state sync of
-- an account in 300 rooms of 300 members loads 90,000 member events, and reading their memberships out of their JSON
-- was a sixth of the CPU of the first such sync after a restart; joining room_memberships at read time instead doubled
-- each state query. Null for other state. Written with the state row by the same upsert (RoomEventPersister); a
-- redaction keeps a member event's membership, so it stays right.
ALTER TABLE room_current_state ADD COLUMN membership text;
UPDATE room_current_state s SET membership = m.membership
  FROM room_memberships m
 WHERE s.type = 'm.room.member' AND m.room_id = s.room_id AND m.user_id = s.state_key AND m.event_id = s.event_id;

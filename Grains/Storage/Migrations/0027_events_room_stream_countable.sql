-- Unread counts read a room's events after the user's read point, and under the default push rules no one's joins or
-- leaves but the user's own can notify: in a room of 300 members that stretch is mostly others' member events, each
-- one read from the heap only to be left out (a sync from scratch of an account in 300 such rooms read 90,000 rows to
-- count 900 messages). This index holds every other event of a room by stream position, so the stretch reads only
-- what can count; member events are not in it, so joins do not pay for it.
CREATE INDEX events_room_stream_not_member ON events (room_id, stream_position) WHERE type <> 'm.room.member';

-- Room peeking (MSC2753): which rooms each device peeks into, without joining, and the account_data stream position
-- the peek started at (its first /sync shows the room in full). Written by the account_data stream's room_peeks rows;
-- a join ends the user's peeks of the room (RoomPeeksEndedByJoinPersister) and a device's go with it
-- (DevicesDeletedPersister). Keyed user first: /sync loads a user's peeks, a join deletes by (user, room).
CREATE TABLE room_peeks (
    user_id         text   NOT NULL,
    room_id         text   NOT NULL,
    device_id       text   NOT NULL,
    stream_position bigint NOT NULL,
    PRIMARY KEY (user_id, room_id, device_id)
);

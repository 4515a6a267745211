-- A client's transaction ids are the events' own device_id and txn_id columns (written since 0003), found through this
-- index, instead of a second table: a send paid for an event_txn_ids row, its primary key, its created_at index and
-- the upsert's conflict check in the same commit (about a quarter of a message's PostgreSQL CPU beyond the event row,
-- bench/pgbench/commit_cost.py). An id is honoured while its event is younger than the transaction id lifetime
-- (origin_server_ts, which this server sets for its own sends); an expired id may be sent again, so the index is not
-- unique: the room grain, the room's only writer, keeps its live ids and the (room, topological) index fences a stray
-- second activation. Nothing is pruned: the entries live as long as the events.
CREATE INDEX events_room_transactions ON events (room_id, sender, device_id, origin_server_ts) INCLUDE (txn_id)
    WHERE txn_id IS NOT NULL;
DROP TABLE event_txn_ids;

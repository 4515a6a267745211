-- An operator's placement of a stream writer: the silo endpoint (host:port, no generation, so the choice outlives a
-- restart of that silo) the writer lives on while that silo is active, instead of its rendezvous-hash home.
ALTER TABLE stream_writers ADD COLUMN pinned_to text;

-- The processes that serve the Client-Server API. Front ends without a silo are Orleans clients, which Orleans'
-- membership does not list; each such process (and each combined one) writes its row here at start and refreshes
-- seen_at periodically, so the admin API can list them. A row that stops being refreshed is a process that died.
CREATE TABLE front_ends (
    name       text        PRIMARY KEY,
    role       text        NOT NULL,
    silo       text,
    host       text        NOT NULL,
    process_id integer     NOT NULL,
    urls       text[]      NOT NULL,
    started_at timestamptz NOT NULL,
    seen_at    timestamptz NOT NULL
);

-- The replication core: one append-only log for every stream, one position sequence per stream, and the writer
-- epochs that fence appends so two activations of one writer can never both commit.

CREATE TABLE stream_writers (
    stream       text    NOT NULL,
    writer       integer NOT NULL,
    epoch        bigint  NOT NULL DEFAULT 0,
    silo         text,
    activated_at timestamptz,
    PRIMARY KEY (stream, writer)
);

CREATE TABLE stream_log (
    stream     text        NOT NULL,
    position   bigint      NOT NULL,
    writer     integer     NOT NULL,
    kind       text        NOT NULL,
    key        text,
    payload    text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, position)
);

-- Readers catch up per writer: rows of one writer between two positions.
CREATE INDEX stream_log_by_writer ON stream_log (stream, writer, position);

-- Streams whose old rows are pruned (the caches stream) record how far; a reader behind that can't replay and
-- must drop everything it caches.
CREATE TABLE stream_pruned (
    stream      text   PRIMARY KEY,
    pruned_upto bigint NOT NULL
);

CREATE SEQUENCE stream_seq_events;
CREATE SEQUENCE stream_seq_caches;
CREATE SEQUENCE stream_seq_typing;
CREATE SEQUENCE stream_seq_receipts;
CREATE SEQUENCE stream_seq_presence;
CREATE SEQUENCE stream_seq_account_data;
CREATE SEQUENCE stream_seq_to_device;
CREATE SEQUENCE stream_seq_device_lists;
CREATE SEQUENCE stream_seq_push_rules;

-- Called first in every append transaction. FOR SHARE lets one activation's concurrent appends proceed together,
-- while a new activation's epoch bump (an UPDATE) waits for them and makes every later append of the old one fail.
CREATE FUNCTION stream_fence(p_stream text, p_writer integer, p_epoch bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM stream_writers
     WHERE stream = p_stream AND writer = p_writer AND epoch = p_epoch
       FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'stream writer %/% epoch % has been superseded', p_stream, p_writer, p_epoch
            USING ERRCODE = 'HSF01';
    END IF;
END $$;

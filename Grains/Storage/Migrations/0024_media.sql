-- The media repository (spec "Content repository"). Content lives in PostgreSQL so every front end serves every
-- file with no shared volume: a row per upload, its bytes in chunks of at most 256 KiB (read and written one chunk at
-- a time, so a large file never sits whole in memory), thumbnails (small) whole.

CREATE TABLE media (
    media_id          text        PRIMARY KEY,
    uploader          text        NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    -- Null until the content arrives: POST /media/v1/create reserves an id, PUT .../upload/{server}/{id} fills it.
    uploaded_at       timestamptz,
    unused_expires_at timestamptz,
    upload_name       text,
    content_type      text,
    size_bytes        bigint,
    sha256            bytea
);

CREATE INDEX media_by_uploader ON media (uploader);
CREATE INDEX media_pending ON media (uploader) WHERE uploaded_at IS NULL;

CREATE TABLE media_chunks (
    media_id text  NOT NULL REFERENCES media (media_id) ON DELETE CASCADE,
    chunk    int   NOT NULL,
    data     bytea NOT NULL,
    PRIMARY KEY (media_id, chunk)
);

-- Media is mostly compressed already (images, video, archives): PostgreSQL's own compression would spend CPU for
-- nothing. EXTERNAL keeps the chunks out of line, uncompressed.
ALTER TABLE media_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE TABLE media_thumbnails (
    media_id     text  NOT NULL REFERENCES media (media_id) ON DELETE CASCADE,
    width        int   NOT NULL,
    height       int   NOT NULL,
    method       text  NOT NULL,
    content_type text  NOT NULL,
    data         bytea NOT NULL,
    PRIMARY KEY (media_id, width, height, method)
);

-- URL previews, cached per URL for every front end.
CREATE TABLE url_previews (
    url        text        PRIMARY KEY,
    fetched_at timestamptz NOT NULL,
    og         jsonb       NOT NULL
);

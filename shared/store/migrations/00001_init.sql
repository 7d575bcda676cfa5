-- +goose Up
-- KEKs: random 256-bit keys wrapped by the Cloud KMS root key. A segment's DEK
-- is wrapped by one of these.
CREATE TABLE keks (
    id         uuid PRIMARY KEY,
    kms_key    text NOT NULL,
    wrapped    bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per packed object in the bucket. An object without a row is an
-- orphan (its flush transaction failed) and the sweep deletes it.
CREATE TABLE blobs (
    path           text PRIMARY KEY,
    retention_days int NOT NULL,
    size           bigint NOT NULL,
    segment_count  int NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Project-wide tombstones. The packer takes a share lock on the project's row
-- before it inserts, a project shred an update lock, so they serialize.
CREATE TABLE projects (
    project_id bigint PRIMARY KEY,
    deleted_at timestamptz
);

CREATE TABLE replays (
    project_id     bigint NOT NULL,
    replay_id      uuid NOT NULL,
    retention_days int NOT NULL,
    first_seen     timestamptz NOT NULL,
    last_seen      timestamptz NOT NULL,
    segment_count  int NOT NULL DEFAULT 0,
    stored_bytes   bigint NOT NULL DEFAULT 0,
    raw_bytes      bigint NOT NULL DEFAULT 0,
    started_at_ms  bigint,
    ended_at_ms    bigint,
    deleted_at     timestamptz,
    PRIMARY KEY (project_id, replay_id)
);

-- A segment row holds the only copy of the segment's wrapped DEK: deleting the
-- row is the crypto-shred.
CREATE TABLE segments (
    project_id        bigint NOT NULL,
    replay_id         uuid NOT NULL,
    type              text NOT NULL,
    segment_id        int NOT NULL,
    blob_path         text NOT NULL REFERENCES blobs (path),
    byte_start        bigint NOT NULL,
    byte_stop         bigint NOT NULL, -- exclusive
    encoding          text NOT NULL,
    raw_size          bigint NOT NULL,
    event_count       int NOT NULL,
    first_ts          bigint NOT NULL, -- ms since epoch, 0 when unknown
    last_ts           bigint NOT NULL,
    has_full_snapshot boolean NOT NULL,
    kek_id            uuid NOT NULL REFERENCES keks (id),
    wrapped_dek       bytea NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    expires_at        timestamptz NOT NULL,
    PRIMARY KEY (project_id, replay_id, type, segment_id),
    CHECK (byte_stop > byte_start)
);
CREATE INDEX segments_blob_path ON segments (blob_path);
CREATE INDEX segments_expires_at ON segments (expires_at);

CREATE TABLE shred_receipts (
    id               uuid PRIMARY KEY,
    project_id       bigint NOT NULL,
    whole_project    boolean NOT NULL,
    replay_ids       uuid[] NOT NULL,
    segments_deleted bigint NOT NULL,
    requested_by     text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX shred_receipts_project ON shred_receipts (project_id, created_at);

-- +goose Down
DROP TABLE shred_receipts;
DROP TABLE segments;
DROP TABLE replays;
DROP TABLE projects;
DROP TABLE blobs;
DROP TABLE keks;

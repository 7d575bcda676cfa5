-- +goose Up
-- Public ingest keys: what an SDK's DSN or project token carries. A key is
-- not a secret (it ships in every page); it names one project and the
-- browser origins that may send with it. Revoking sets revoked_at; Ingest
-- caches lookups for a short TTL (INGEST_KEY_CACHE_TTL), so a revocation
-- takes effect within it.
CREATE TABLE ingest_keys (
    public_key text PRIMARY KEY,
    project_id bigint NOT NULL,
    origins    text[] NOT NULL DEFAULT '{}',
    label      text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    CHECK (project_id > 0)
);
CREATE INDEX ingest_keys_project ON ingest_keys (project_id);

-- Segment numbers Ingest gave to batches that arrive without one (PostHog's
-- snapshot batches). batch_key is a hash of the batch's content, so an SDK's
-- retry of the same batch finds its earlier number and Pack stores nothing
-- new; the unique segment number keeps two different batches apart.
CREATE TABLE ingest_batches (
    project_id bigint NOT NULL,
    replay_id  uuid NOT NULL,
    batch_key  bytea NOT NULL,
    segment_id int NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, replay_id, batch_key),
    UNIQUE (project_id, replay_id, segment_id)
);
CREATE INDEX ingest_batches_created_at ON ingest_batches (created_at);

-- Ingest's database users are members of replayvault_ingest (Terraform
-- grants it): it reads keys and numbers batches, and nothing else.
-- +goose StatementBegin
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'replayvault_ingest') THEN
        CREATE ROLE replayvault_ingest NOLOGIN;
    END IF;
END
$$;
-- +goose StatementEnd
GRANT USAGE ON SCHEMA public TO replayvault_ingest;
GRANT SELECT ON ingest_keys TO replayvault_ingest;
GRANT SELECT, INSERT ON ingest_batches TO replayvault_ingest;

-- +goose Down
REVOKE ALL ON ingest_batches FROM replayvault_ingest;
REVOKE ALL ON ingest_keys FROM replayvault_ingest;
REVOKE USAGE ON SCHEMA public FROM replayvault_ingest;
DROP TABLE ingest_batches;
DROP TABLE ingest_keys;

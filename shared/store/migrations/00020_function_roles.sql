-- +goose Up
-- One role per function, each with only what that function does (issue 13):
--   replayvault_serve: reads.
--   replayvault_pack:  inserts keys, blobs, segments, projects and replays and
--                      updates a replay's counters; never deletes, never sets
--                      or clears a tombstone.
--   replayvault_shred: tombstones, deletes segment rows (the crypto-shred) and
--                      swept blobs, writes receipts; never touches keks.
-- Terraform grants each function's IAM database user its own role.
-- replayvault_app (00010) stays for existing deployments until Terraform has
-- moved every user off it.
-- +goose StatementBegin
DO $$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['replayvault_pack', 'replayvault_serve', 'replayvault_shred'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
        EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', r);
    END LOOP;
END
$$;
-- +goose StatementEnd

-- A batch locks its projects FOR SHARE, which PostgreSQL allows only with
-- UPDATE on some column of the table. This column exists for that grant: it
-- carries no meaning, so Pack can lock a project without being able to
-- change its tombstone.
ALTER TABLE projects ADD COLUMN IF NOT EXISTS pack_lock boolean;

GRANT SELECT ON ALL TABLES IN SCHEMA public TO replayvault_serve;

GRANT SELECT, INSERT ON keks, blobs, segments TO replayvault_pack;
GRANT SELECT ON projects, replays TO replayvault_pack;
GRANT INSERT (project_id) ON projects TO replayvault_pack;
GRANT UPDATE (pack_lock) ON projects TO replayvault_pack;
GRANT INSERT (project_id, replay_id, retention_days, first_seen, last_seen) ON replays TO replayvault_pack;
GRANT UPDATE (last_seen, retention_days, segment_count, stored_bytes, raw_bytes, started_at_ms, ended_at_ms)
    ON replays TO replayvault_pack;

GRANT SELECT, INSERT, UPDATE, DELETE ON projects, replays, segments, blobs TO replayvault_shred;
GRANT SELECT, INSERT ON shred_receipts TO replayvault_shred;

-- +goose Down
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM replayvault_pack, replayvault_serve, replayvault_shred;
REVOKE USAGE ON SCHEMA public FROM replayvault_pack, replayvault_serve, replayvault_shred;
ALTER TABLE projects DROP COLUMN IF EXISTS pack_lock;
DROP ROLE IF EXISTS replayvault_pack;
DROP ROLE IF EXISTS replayvault_serve;
DROP ROLE IF EXISTS replayvault_shred;

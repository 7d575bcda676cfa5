-- +goose NO TRANSACTION
-- +goose Up
-- Serve's replay list: newest first by the first event's time, one
-- project's live replays, keyset-paginated on (started_at_ms, replay_id).
-- Built concurrently so that adding it does not block packing on a large
-- table.
CREATE INDEX CONCURRENTLY IF NOT EXISTS replays_list
    ON replays (project_id, started_at_ms DESC, replay_id DESC)
    WHERE deleted_at IS NULL AND started_at_ms IS NOT NULL;

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS replays_list;

-- +goose NO TRANSACTION
-- +goose Up
-- The sweep's compaction pass finds idle replays not compacted since their
-- last segment, oldest first.
CREATE INDEX CONCURRENTLY IF NOT EXISTS replays_compact
    ON replays (last_seen, project_id, replay_id)
    WHERE deleted_at IS NULL AND (compacted_seen IS NULL OR compacted_seen < last_seen);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS replays_compact;

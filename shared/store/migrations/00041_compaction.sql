-- +goose Up
-- compacted_seen is the last_seen a compaction of the replay covered: the
-- replay is due again once a later segment moves last_seen past it.
ALTER TABLE replays ADD COLUMN compacted_seen timestamptz;
-- released_at is when a compaction last moved segments out of the blob.
-- The sweep deletes an emptied blob only a grace period after that, so a
-- read that looked up the old ranges just before the move still finds its
-- bytes.
ALTER TABLE blobs ADD COLUMN released_at timestamptz;

-- +goose Down
ALTER TABLE blobs DROP COLUMN released_at;
ALTER TABLE replays DROP COLUMN compacted_seen;

-- +goose Up
-- A whole-project shred commits its tombstone first and then deletes the
-- project's rows in bounded batches (issue 13); its receipt records progress
-- and, once no row is left, when it completed. An unfinished one is resumed by
-- the sweep or by the next shred call for the project.
ALTER TABLE shred_receipts ADD COLUMN completed_at timestamptz;
UPDATE shred_receipts SET completed_at = created_at;
CREATE INDEX shred_receipts_unfinished ON shred_receipts (project_id) WHERE completed_at IS NULL;
GRANT UPDATE (segments_deleted, completed_at) ON shred_receipts TO replayvault_shred;

-- +goose Down
REVOKE UPDATE (segments_deleted, completed_at) ON shred_receipts FROM replayvault_shred;
DROP INDEX shred_receipts_unfinished;
ALTER TABLE shred_receipts DROP COLUMN completed_at;

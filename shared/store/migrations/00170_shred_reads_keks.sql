-- +goose Up
-- Compaction may re-encode a replay's segments to zstd (COMPACT_ZSTD_LEVEL):
-- it opens each segment, so Shred reads the wrapped KEKs (useless without
-- KMS decrypt on the root key, which Terraform grants Shred only when that
-- mode is on). Shred still never inserts, changes or deletes a key.
GRANT SELECT ON keks TO replayvault_shred;

-- +goose Down
REVOKE SELECT ON keks FROM replayvault_shred;

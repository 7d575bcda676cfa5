-- +goose Up
-- Grants of the per-function roles (00020) on the tables later migrations
-- added, in one place so each role's rights read as a whole:
--   Pack reads the edge-rule assignments and modules (00050).
GRANT SELECT ON rule_modules, rule_assignments TO replayvault_pack;
--   Pack stores what Ingest learnt about a replay on its row (00031).
GRANT UPDATE (source, source_id, replay_type, sdk, user_agent_family, urls, error_ids, trace_ids)
    ON replays TO replayvault_pack;
--   Serve reads the replay rows whole (its SELECT covers the new columns);
--   Shred's sweep forgets old batch numbers (00030).
GRANT SELECT, DELETE ON ingest_batches TO replayvault_shred;
--   Replay issues (00060): Pack records occurrences and counts them, never
--   deletes; Serve reads them and, for issue:write, merges, unmerges, sets
--   status and writes notes (never an occurrence); Shred removes a shredded
--   replay's occurrences and fixes the counts, and its sweep expires them.
GRANT SELECT, INSERT, UPDATE ON issue_projects, issue_groups, issue_replays, issue_occurrences, issue_throttle
    TO replayvault_pack;
GRANT SELECT ON issue_projects, issue_groups, issue_notes, issue_replays, issue_occurrences, issue_throttle
    TO replayvault_serve;
GRANT INSERT, UPDATE ON issue_projects TO replayvault_serve;
GRANT INSERT, UPDATE, DELETE ON issue_groups, issue_notes TO replayvault_serve;
GRANT SELECT, UPDATE, DELETE ON issue_projects, issue_groups, issue_notes, issue_replays, issue_occurrences, issue_throttle
    TO replayvault_shred;

-- +goose Down
REVOKE ALL ON issue_projects, issue_groups, issue_notes, issue_replays, issue_occurrences, issue_throttle
    FROM replayvault_pack, replayvault_serve, replayvault_shred;
REVOKE SELECT, DELETE ON ingest_batches FROM replayvault_shred;
REVOKE UPDATE (source, source_id, replay_type, sdk, user_agent_family, urls, error_ids, trace_ids)
    ON replays FROM replayvault_pack;
REVOKE SELECT ON rule_modules, rule_assignments FROM replayvault_pack;

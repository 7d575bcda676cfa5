-- +goose Up
-- Grants of the per-function roles (00020) on the tables later migrations
-- added, in one place so each role's rights read as a whole:
--   Pack reads the edge-rule assignments and modules (00050).
GRANT SELECT ON rule_modules, rule_assignments TO replayvault_pack;

-- +goose Down
REVOKE SELECT ON rule_modules, rule_assignments FROM replayvault_pack;

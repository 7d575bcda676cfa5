-- +goose Up
-- The functions' IAM database users are members of replayvault_app (Terraform
-- grants it), which may read and write rows but not change the schema; only
-- the deployer's user, which runs these migrations, owns the tables.
-- +goose StatementBegin
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'replayvault_app') THEN
        CREATE ROLE replayvault_app NOLOGIN;
    END IF;
END
$$;
-- +goose StatementEnd
GRANT USAGE ON SCHEMA public TO replayvault_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO replayvault_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO replayvault_app;

-- +goose Down
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM replayvault_app;
REVOKE SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public FROM replayvault_app;
REVOKE USAGE ON SCHEMA public FROM replayvault_app;

-- +goose Up
-- Edge rules: WebAssembly modules stored in the bucket under
-- rules/sha256/<hash>.wasm, and their assignments to projects. Pack reads
-- both; only the operator's `replayvault rules` (the deployer's database
-- user) writes them.
CREATE TABLE rule_modules (
    hash       text PRIMARY KEY CHECK (hash ~ '^[0-9a-f]{64}$'),
    name       text NOT NULL,
    size       bigint NOT NULL CHECK (size > 0),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per rule a project runs, in position order. fail_open says what a
-- module failure does to a segment: false (the default, right for scrubbing)
-- sends it to the reject topic, true stores it as if the rule were absent.
CREATE TABLE rule_assignments (
    project_id  bigint NOT NULL,
    name        text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    module_hash text NOT NULL REFERENCES rule_modules (hash),
    position    int NOT NULL DEFAULT 0,
    config      jsonb,
    fail_open   boolean NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, name)
);

-- The functions read rules; changing them is an operator's act.
REVOKE INSERT, UPDATE, DELETE ON rule_modules, rule_assignments FROM replayvault_app;

-- +goose Down
DROP TABLE rule_assignments;
DROP TABLE rule_modules;

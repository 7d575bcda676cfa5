-- +goose Up
-- What the SDK said about a replay, carried by Ingest in message attributes
-- and kept by Pack: where it came from (sentry, posthog, rrweb) and under
-- which id, its kind, SDK, browser family, and the pages, errors and traces
-- it touched (each list capped; see store.MaxReplayListLen).
ALTER TABLE replays
    ADD COLUMN source            text,
    ADD COLUMN source_id         text,
    ADD COLUMN replay_type       text,
    ADD COLUMN sdk               text,
    ADD COLUMN user_agent_family text,
    ADD COLUMN urls              text[],
    ADD COLUMN error_ids         text[],
    ADD COLUMN trace_ids         text[];

-- +goose Down
ALTER TABLE replays
    DROP COLUMN source,
    DROP COLUMN source_id,
    DROP COLUMN replay_type,
    DROP COLUMN sdk,
    DROP COLUMN user_agent_family,
    DROP COLUMN urls,
    DROP COLUMN error_ids,
    DROP COLUMN trace_ids;

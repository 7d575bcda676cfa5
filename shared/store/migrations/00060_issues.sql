-- +goose Up
-- Replay issues (see README "Replay issues"). Pack detects occurrences in the
-- segments it stores; each lands in the group of its final fingerprint.
-- A merge is a view: a group row with is_view that other groups point to
-- with parent_id. Members keep their own counters, status and notes, so an
-- unmerge (deleting the view row and resetting its members' parent_id) gives
-- back exactly what was there, and neither costs more with more occurrences:
-- a view's counts are summed at read time over its members' counters.

-- One row per project that has issues: the counter its group ids come from
-- (a short id is P{project}-{base36(id)}, e.g. P42-1A). Ids are never reused,
-- so the short id of an unmerged view never comes back as another group.
CREATE TABLE issue_projects (
    project_id bigint PRIMARY KEY,
    last_id    bigint NOT NULL DEFAULT 0
);

CREATE TABLE issue_groups (
    project_id   bigint NOT NULL,
    id           bigint NOT NULL,
    parent_id    bigint, -- the view this group is merged into, if any
    is_view      boolean NOT NULL DEFAULT false,
    kind         text NOT NULL,
    fingerprint  text, -- final fingerprint; NULL for views
    title        text NOT NULL,
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved', 'ignored')),
    status_at    timestamptz,
    times_seen   bigint NOT NULL DEFAULT 0, -- every occurrence, throttled or not
    row_count    bigint NOT NULL DEFAULT 0, -- occurrences kept as rows
    replay_count bigint NOT NULL DEFAULT 0, -- replays linked (issue_replays rows)
    first_ts     bigint, -- ms since epoch, event time
    last_ts      bigint,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, id),
    FOREIGN KEY (project_id, parent_id) REFERENCES issue_groups (project_id, id),
    CHECK (parent_id <> id),
    CHECK (is_view = (fingerprint IS NULL))
);
CREATE UNIQUE INDEX issue_groups_fingerprint ON issue_groups (project_id, fingerprint) WHERE fingerprint IS NOT NULL;
CREATE INDEX issue_groups_parent ON issue_groups (project_id, parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX issue_groups_top ON issue_groups (project_id, id DESC) WHERE parent_id IS NULL;

CREATE TABLE issue_notes (
    project_id bigint NOT NULL,
    group_id   bigint NOT NULL,
    id         bigint NOT NULL, -- per group, from 1
    body       text NOT NULL CHECK (octet_length(body) <= 4096),
    author     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, group_id, id),
    FOREIGN KEY (project_id, group_id) REFERENCES issue_groups (project_id, id) ON DELETE CASCADE
);

-- One row per (group, replay): the replay's share of the group's counters,
-- so a replay shred can take it back out exactly.
CREATE TABLE issue_replays (
    project_id  bigint NOT NULL,
    group_id    bigint NOT NULL,
    replay_id   uuid NOT NULL,
    times_seen  bigint NOT NULL,
    row_count   bigint NOT NULL,
    first_ts    bigint NOT NULL,
    last_ts     bigint NOT NULL,
    expires_at  timestamptz NOT NULL, -- the latest expiry of the replay's segments that brought it
    PRIMARY KEY (project_id, group_id, replay_id),
    FOREIGN KEY (project_id, group_id) REFERENCES issue_groups (project_id, id)
);
CREATE INDEX issue_replays_replay ON issue_replays (project_id, replay_id);
CREATE INDEX issue_replays_recent ON issue_replays (project_id, group_id, last_ts DESC);
CREATE INDEX issue_replays_expires_at ON issue_replays (expires_at);

-- Occurrences kept as rows (at most the throttle's quota per edge
-- fingerprint and window). Idempotent on the segment and the event.
CREATE TABLE issue_occurrences (
    project_id  bigint NOT NULL,
    group_id    bigint NOT NULL,
    replay_id   uuid NOT NULL,
    segment_id  int NOT NULL,
    ts          bigint NOT NULL, -- ms since epoch
    kind        text NOT NULL,
    edge_fp     text NOT NULL,
    final_fp    text NOT NULL,
    details     jsonb NOT NULL CHECK (octet_length(details::text) <= 2048),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, replay_id, segment_id, kind, ts, edge_fp),
    FOREIGN KEY (project_id, group_id) REFERENCES issue_groups (project_id, id)
);
CREATE INDEX issue_occurrences_group ON issue_occurrences (project_id, group_id, ts DESC);

-- Edge throttle: occurrences per edge fingerprint and time window (event
-- time). Past the quota Pack only counts.
CREATE TABLE issue_throttle (
    project_id   bigint NOT NULL,
    edge_fp      text NOT NULL,
    window_start bigint NOT NULL, -- ms since epoch
    seen         bigint NOT NULL,
    PRIMARY KEY (project_id, edge_fp, window_start)
);

-- +goose Down
DROP TABLE issue_throttle;
DROP TABLE issue_occurrences;
DROP TABLE issue_replays;
DROP TABLE issue_notes;
DROP TABLE issue_groups;
DROP TABLE issue_projects;

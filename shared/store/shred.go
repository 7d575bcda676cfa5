package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/replayvault/replayvault/shared/segment"
)

// Receipt is the record of one shred: what was asked for and how many
// wrapped DEKs the call destroyed. A repeat of a shred gets its own receipt
// with SegmentsShredded 0.
type Receipt struct {
	ID               uuid.UUID
	ProjectID        int64
	ReplayIDs        []uuid.UUID // sorted; empty for a whole-project shred
	WholeProject     bool
	SegmentsShredded int64
	RequestedBy      string
	ShreddedAt       time.Time
}

// ShredReplays crypto-shreds replays of project in one transaction: it
// tombstones each replay (creating the tombstone for ids never seen, so a
// late segment cannot bring them to life), deletes their segment rows (the
// only copies of their wrapped DEKs) and writes a receipt.
//
// Locking: the replay rows are upserted in (project, replay) order, the same
// order and the same row locks as CommitBatch takes, so a shred and a batch
// commit that touch the same replay serialize on its row and never
// deadlock. If the batch commits first, its segments are visible to the
// DELETE that follows the lock (READ COMMITTED takes a fresh snapshot per
// statement); if the shred commits first, the batch's upsert returns the
// tombstone and the batch stores nothing for the replay.
func (db *DB) ShredReplays(ctx context.Context, project int64, replays []uuid.UUID, requestedBy string) (Receipt, error) {
	ids := slices.Clone(replays)
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	ids = slices.Compact(ids)
	if len(ids) == 0 {
		return Receipt{}, fmt.Errorf("shred project %d: no replay ids", project)
	}
	rc := Receipt{ID: uuid.New(), ProjectID: project, ReplayIDs: ids, RequestedBy: requestedBy}
	err := db.InTx(ctx, pgx.ReadCommitted, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
			INSERT INTO replays AS r (project_id, replay_id, retention_days, first_seen, last_seen, deleted_at)
			SELECT $1, id, $3, now(), now(), now()
			FROM unnest($2::uuid[]) WITH ORDINALITY AS t(id, ord)
			ORDER BY ord
			ON CONFLICT (project_id, replay_id) DO UPDATE SET `+tombstone,
			project, ids, segment.DefaultRetentionDays); err != nil {
			return fmt.Errorf("tombstone replays: %w", err)
		}
		tag, err := tx.Exec(ctx,
			`DELETE FROM segments WHERE project_id = $1 AND replay_id = ANY($2::uuid[])`, project, ids)
		if err != nil {
			return fmt.Errorf("delete segments: %w", err)
		}
		rc.SegmentsShredded = tag.RowsAffected()
		if err := unlinkReplayIssues(ctx, tx, project, ids); err != nil {
			return err
		}
		return insertReceipt(ctx, tx, &rc)
	})
	if err != nil {
		return Receipt{}, fmt.Errorf("shred %d replays of project %d: %w", len(ids), project, err)
	}
	return rc, nil
}

// ShredProject crypto-shreds a whole project in one transaction: it
// tombstones the project row (created if missing), then every replay of the
// project, deletes all of the project's segment rows and writes a receipt.
//
// Locking: the project row's update lock conflicts with the share lock that
// CommitBatch holds on it from before it touches any replay until it
// commits, so every batch for the project either committed before (its
// segments are deleted here) or waits and then reads the tombstone (it
// stores nothing). The replay rows are then locked in key order, as
// ShredReplays does, so the two kinds of shred cannot deadlock.
func (db *DB) ShredProject(ctx context.Context, project int64, requestedBy string) (Receipt, error) {
	rc := Receipt{ID: uuid.New(), ProjectID: project, WholeProject: true, ReplayIDs: []uuid.UUID{}, RequestedBy: requestedBy}
	err := db.InTx(ctx, pgx.ReadCommitted, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
			INSERT INTO projects AS p (project_id, deleted_at) VALUES ($1, now())
			ON CONFLICT (project_id) DO UPDATE SET deleted_at = coalesce(p.deleted_at, excluded.deleted_at)`,
			project); err != nil {
			return fmt.Errorf("tombstone project: %w", err)
		}
		if _, err := tx.Exec(ctx, `
			UPDATE replays AS r SET `+tombstone+`
			FROM (SELECT project_id, replay_id FROM replays WHERE project_id = $1
				ORDER BY replay_id FOR UPDATE) AS l
			WHERE r.project_id = l.project_id AND r.replay_id = l.replay_id`, project); err != nil {
			return fmt.Errorf("tombstone replays: %w", err)
		}
		tag, err := tx.Exec(ctx, `DELETE FROM segments WHERE project_id = $1`, project)
		if err != nil {
			return fmt.Errorf("delete segments: %w", err)
		}
		rc.SegmentsShredded = tag.RowsAffected()
		if err := deleteProjectIssues(ctx, tx, project); err != nil {
			return err
		}
		return insertReceipt(ctx, tx, &rc)
	})
	if err != nil {
		return Receipt{}, fmt.Errorf("shred project %d: %w", project, err)
	}
	return rc, nil
}

// tombstone is the SET list that marks a replay row shredded. The first
// shred's time is kept, so Serve's 410 says when the replay went. The
// counters and time span are cleared: they describe a recording that no
// longer exists.
const tombstone = `
	deleted_at = coalesce(r.deleted_at, now()),
	segment_count = 0, stored_bytes = 0, raw_bytes = 0,
	started_at_ms = NULL, ended_at_ms = NULL`

func insertReceipt(ctx context.Context, tx pgx.Tx, rc *Receipt) error {
	// A tombstone holds no key material; the receipt names what was
	// destroyed and who asked, for the controller's records.
	err := tx.QueryRow(ctx, `
		INSERT INTO shred_receipts (id, project_id, whole_project, replay_ids, segments_deleted, requested_by)
		VALUES ($1, $2, $3, $4, $5, $6)
		RETURNING created_at`,
		rc.ID, rc.ProjectID, rc.WholeProject, rc.ReplayIDs, rc.SegmentsShredded, rc.RequestedBy,
	).Scan(&rc.ShreddedAt)
	if err != nil {
		return fmt.Errorf("insert receipt: %w", err)
	}
	return nil
}

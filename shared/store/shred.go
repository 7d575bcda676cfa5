package store

import (
	"context"
	"errors"
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
	// Complete is false while a whole-project shred still has rows to
	// delete; SegmentsShredded is then its progress so far. The tombstone
	// is in force either way.
	Complete bool
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
	rc := Receipt{ID: uuid.New(), ProjectID: project, ReplayIDs: ids, RequestedBy: requestedBy, Complete: true}
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

// ShredLimits bound the work of one ShredProjectLimited call.
type ShredLimits struct {
	// Batch is how many rows one transaction deletes or tombstones
	// (default 5,000).
	Batch int
	// MaxBatches stops the call after this many delete transactions
	// (0: no limit).
	MaxBatches int
	// Budget stops the call after this long (0: until ctx ends).
	Budget time.Duration
}

// DefaultShredBatch is ShredLimits.Batch's default.
const DefaultShredBatch = 5000

// ShredProject crypto-shreds a whole project to completion (or until ctx
// ends); see ShredProjectLimited.
func (db *DB) ShredProject(ctx context.Context, project int64, requestedBy string) (Receipt, error) {
	return db.ShredProjectLimited(ctx, project, requestedBy, ShredLimits{})
}

// ShredProjectLimited crypto-shreds a whole project in two steps, so that
// a project of any size can be shredded without one long transaction:
//
//  1. One short transaction tombstones the project row (created if missing)
//     and opens a receipt, or takes over the project's unfinished one. From
//     its commit Serve answers 410 for every replay of the project and every
//     batch that has not yet committed drops the project's segments (a
//     batch locks the project row FOR SHARE, which waits for this update;
//     a batch that committed first has its rows deleted in step 2).
//  2. Transactions of at most lim.Batch rows tombstone the project's replays
//     and delete its segment rows (the wrapped DEKs), each adding its count
//     to the receipt. None holds the project row, so batches of the other
//     projects sharing a Pack batch never wait for the shred. When no row is
//     left the receipt is marked complete.
//
// When lim stops the call first, or it crashes, the receipt stays
// unfinished: ResumeProjectShreds (run by the sweep) or the next call for
// the project carries on where it stopped.
func (db *DB) ShredProjectLimited(ctx context.Context, project int64, requestedBy string, lim ShredLimits) (Receipt, error) {
	rc := Receipt{ProjectID: project, WholeProject: true, ReplayIDs: []uuid.UUID{}, RequestedBy: requestedBy}
	err := db.InTx(ctx, pgx.ReadCommitted, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
			INSERT INTO projects AS p (project_id, deleted_at) VALUES ($1, now())
			ON CONFLICT (project_id) DO UPDATE SET deleted_at = coalesce(p.deleted_at, excluded.deleted_at)`,
			project); err != nil {
			return fmt.Errorf("tombstone project: %w", err)
		}
		err := tx.QueryRow(ctx, `
			SELECT id, requested_by, segments_deleted, created_at FROM shred_receipts
			WHERE project_id = $1 AND whole_project AND completed_at IS NULL
			ORDER BY created_at LIMIT 1 FOR UPDATE`, project).
			Scan(&rc.ID, &rc.RequestedBy, &rc.SegmentsShredded, &rc.ShreddedAt)
		if err == nil {
			return nil // carry on with the unfinished shred
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("find unfinished shred: %w", err)
		}
		rc.ID, rc.SegmentsShredded = uuid.New(), 0
		// The project's issue rows go with the tombstone: they are
		// bounded (throttled occurrences, capped groups), unlike segments.
		if err := deleteProjectIssues(ctx, tx, project); err != nil {
			return err
		}
		return insertReceipt(ctx, tx, &rc)
	})
	if err != nil {
		return Receipt{}, fmt.Errorf("shred project %d: %w", project, err)
	}
	if err := db.continueProjectShred(ctx, &rc, lim); err != nil {
		return rc, fmt.Errorf("shred project %d (receipt %s, %d segments so far): %w", project, rc.ID, rc.SegmentsShredded, err)
	}
	return rc, nil
}

// ResumeProjectShreds carries on every unfinished whole-project shred
// within lim (lim.MaxBatches and lim.Budget apply to each) and returns the
// receipts it advanced.
func (db *DB) ResumeProjectShreds(ctx context.Context, lim ShredLimits) ([]Receipt, error) {
	ctx2, cancel := db.WithTimeout(ctx)
	rows, err := db.Pool.Query(ctx2, `
		SELECT id, project_id, requested_by, segments_deleted, created_at FROM shred_receipts
		WHERE whole_project AND completed_at IS NULL ORDER BY created_at`)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("list unfinished shreds: %w", classify(err))
	}
	var todo []Receipt
	for rows.Next() {
		rc := Receipt{WholeProject: true, ReplayIDs: []uuid.UUID{}}
		if err := rows.Scan(&rc.ID, &rc.ProjectID, &rc.RequestedBy, &rc.SegmentsShredded, &rc.ShreddedAt); err != nil {
			rows.Close()
			cancel()
			return nil, fmt.Errorf("list unfinished shreds: %w", err)
		}
		todo = append(todo, rc)
	}
	rows.Close()
	cancel()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list unfinished shreds: %w", classify(err))
	}
	for i := range todo {
		if err := db.continueProjectShred(ctx, &todo[i], lim); err != nil {
			return todo[:i+1], fmt.Errorf("resume shred of project %d: %w", todo[i].ProjectID, err)
		}
	}
	return todo, nil
}

// continueProjectShred runs step 2 of ShredProjectLimited for rc.
func (db *DB) continueProjectShred(ctx context.Context, rc *Receipt, lim ShredLimits) error {
	if lim.Batch <= 0 {
		lim.Batch = DefaultShredBatch
	}
	var deadline time.Time
	if lim.Budget > 0 {
		deadline = time.Now().Add(lim.Budget)
	}
	for n := 0; ; n++ {
		// Every call makes progress: the limits apply from the second
		// batch on.
		if n > 0 && ((lim.MaxBatches > 0 && n >= lim.MaxBatches) || (!deadline.IsZero() && time.Now().After(deadline))) {
			return nil // unfinished; resumed later
		}
		done := false
		err := db.InTx(ctx, pgx.ReadCommitted, func(ctx context.Context, tx pgx.Tx) error {
			// Replay rows first, in key order as ShredReplays locks them.
			tag, err := tx.Exec(ctx, `
				UPDATE replays AS r SET `+tombstone+`
				FROM (SELECT project_id, replay_id FROM replays
					WHERE project_id = $1 AND deleted_at IS NULL
					ORDER BY replay_id LIMIT $2 FOR UPDATE) AS l
				WHERE r.project_id = l.project_id AND r.replay_id = l.replay_id`, rc.ProjectID, lim.Batch)
			if err != nil {
				return fmt.Errorf("tombstone replays: %w", err)
			}
			replays := tag.RowsAffected()
			tag, err = tx.Exec(ctx, `
				DELETE FROM segments AS s
				USING (SELECT project_id, replay_id, type, segment_id FROM segments
					WHERE project_id = $1 LIMIT $2 FOR UPDATE) AS d
				WHERE s.project_id = d.project_id AND s.replay_id = d.replay_id
					AND s.type = d.type AND s.segment_id = d.segment_id`, rc.ProjectID, lim.Batch)
			if err != nil {
				return fmt.Errorf("delete segments: %w", err)
			}
			deleted := tag.RowsAffected()
			done = replays < int64(lim.Batch) && deleted < int64(lim.Batch)
			var completed *time.Time
			err = tx.QueryRow(ctx, `
				UPDATE shred_receipts SET segments_deleted = segments_deleted + $2,
					completed_at = CASE WHEN $3 AND NOT EXISTS (SELECT 1 FROM segments WHERE project_id = $4)
						THEN now() END
				WHERE id = $1 RETURNING completed_at`, rc.ID, deleted, done, rc.ProjectID).Scan(&completed)
			if err != nil {
				return fmt.Errorf("record progress: %w", err)
			}
			rc.SegmentsShredded += deleted
			done = completed != nil
			return nil
		})
		if err != nil {
			return err
		}
		if done {
			rc.Complete = true
			return nil
		}
	}
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
	// destroyed and who asked, for the controller's records. A whole-project
	// shred's receipt is completed by its last batch.
	err := tx.QueryRow(ctx, `
		INSERT INTO shred_receipts (id, project_id, whole_project, replay_ids, segments_deleted, requested_by, completed_at)
		VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $3 THEN NULL ELSE now() END)
		RETURNING created_at`,
		rc.ID, rc.ProjectID, rc.WholeProject, rc.ReplayIDs, rc.SegmentsShredded, rc.RequestedBy,
	).Scan(&rc.ShreddedAt)
	if err != nil {
		return fmt.Errorf("insert receipt: %w", err)
	}
	return nil
}

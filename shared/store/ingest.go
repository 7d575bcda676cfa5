package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// IngestKey is a project's public ingest key.
type IngestKey struct {
	PublicKey string
	ProjectID int64
	Origins   []string
	Label     string
	CreatedAt time.Time
	RevokedAt *time.Time
}

// CreateIngestKey stores a new key.
func (db *DB) CreateIngestKey(ctx context.Context, k IngestKey) error {
	ctx, cancel := db.WithTimeout(ctx)
	defer cancel()
	origins := k.Origins
	if origins == nil {
		origins = []string{}
	}
	if _, err := db.Pool.Exec(ctx,
		`INSERT INTO ingest_keys (public_key, project_id, origins, label) VALUES ($1, $2, $3, $4)`,
		k.PublicKey, k.ProjectID, origins, k.Label); err != nil {
		return fmt.Errorf("create ingest key for project %d: %w", k.ProjectID, classify(err))
	}
	return nil
}

// IngestKeys lists a project's keys, revoked ones included, oldest first.
func (db *DB) IngestKeys(ctx context.Context, project int64) ([]IngestKey, error) {
	ctx, cancel := db.WithTimeout(ctx)
	defer cancel()
	rows, err := db.Pool.Query(ctx, `
		SELECT public_key, project_id, origins, label, created_at, revoked_at
		FROM ingest_keys WHERE project_id = $1 ORDER BY created_at, public_key`, project)
	if err != nil {
		return nil, fmt.Errorf("list ingest keys of project %d: %w", project, classify(err))
	}
	keys, err := pgx.CollectRows(rows, scanIngestKey)
	if err != nil {
		return nil, fmt.Errorf("list ingest keys of project %d: %w", project, classify(err))
	}
	return keys, nil
}

// RevokeIngestKey marks a project's key revoked. It returns ErrNotFound when
// the project has no such key; revoking twice keeps the first time.
func (db *DB) RevokeIngestKey(ctx context.Context, project int64, publicKey string) error {
	ctx, cancel := db.WithTimeout(ctx)
	defer cancel()
	tag, err := db.Pool.Exec(ctx, `
		UPDATE ingest_keys SET revoked_at = coalesce(revoked_at, now())
		WHERE project_id = $1 AND public_key = $2`, project, publicKey)
	if err != nil {
		return fmt.Errorf("revoke ingest key of project %d: %w", project, classify(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("revoke ingest key of project %d: %w", project, ErrNotFound)
	}
	return nil
}

// LookupIngestKey returns the key, revoked or not, or ErrNotFound.
func (db *DB) LookupIngestKey(ctx context.Context, publicKey string) (*IngestKey, error) {
	ctx, cancel := db.WithTimeout(ctx)
	defer cancel()
	var k *IngestKey
	err := readOnly(ctx, func() error {
		rows, err := db.Pool.Query(ctx, `
			SELECT public_key, project_id, origins, label, created_at, revoked_at
			FROM ingest_keys WHERE public_key = $1`, publicKey)
		if err != nil {
			return err
		}
		got, err := pgx.CollectExactlyOneRow(rows, scanIngestKey)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		k = &got
		return err
	})
	if err != nil {
		// The key itself stays out of the error: it may end up in a log.
		return nil, fmt.Errorf("look up ingest key: %w", err)
	}
	return k, nil
}

func scanIngestKey(row pgx.CollectableRow) (IngestKey, error) {
	var k IngestKey
	err := row.Scan(&k.PublicKey, &k.ProjectID, &k.Origins, &k.Label, &k.CreatedAt, &k.RevokedAt)
	return k, err
}

// BatchSegmentID returns the segment number of a batch that arrived without
// one, identified by key (a hash of its content): the number it got before
// if the batch was seen already (an SDK retry), otherwise want, or the
// first free number after want (within batchProbe numbers, and at most
// limit) when another batch holds it. Numbers are unique per replay, so two
// batches never share one, and a retry never gets a new one.
func (db *DB) BatchSegmentID(ctx context.Context, project int64, replay uuid.UUID, key []byte, want, limit int) (int, error) {
	ctx, cancel := db.WithTimeout(ctx)
	defer cancel()
	hi := min(want+batchProbe-1, limit)
	// A concurrent insert of the same batch or of the same number makes the
	// statement insert nothing; the next attempt then sees it. Every failed
	// attempt means another batch took a number of the range, so after
	// hi-want+1 of them the range is full: under contention a batch keeps
	// trying until then rather than giving up early.
	for range max(hi-want+2, 1) {
		var got int32
		err := db.Pool.QueryRow(ctx, `
			WITH mine AS (
				SELECT segment_id FROM ingest_batches
				WHERE project_id = $1 AND replay_id = $2 AND batch_key = $3
			), free AS (
				SELECT n FROM generate_series($4::int, $5::int) AS n
				WHERE NOT EXISTS (SELECT FROM ingest_batches b
					WHERE b.project_id = $1 AND b.replay_id = $2 AND b.segment_id = n)
				ORDER BY n LIMIT 1
			), ins AS (
				INSERT INTO ingest_batches (project_id, replay_id, batch_key, segment_id)
				SELECT $1, $2, $3, n FROM free
				WHERE NOT EXISTS (SELECT FROM mine)
				ON CONFLICT DO NOTHING
				RETURNING segment_id
			)
			SELECT segment_id FROM mine UNION ALL SELECT segment_id FROM ins`,
			project, replay, key, int32(want), int32(hi)).Scan(&got)
		if err == nil {
			return int(got), nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return 0, fmt.Errorf("number batch of replay %d/%s: %w", project, replay, classify(err))
		}
	}
	return 0, fmt.Errorf("number batch of replay %d/%s from %d: %w", project, replay, want, ErrNoSegmentID)
}

// batchProbe is how many numbers from the wanted one BatchSegmentID tries.
const batchProbe = 1024

// ErrNoSegmentID means no segment number near the wanted one is free.
var ErrNoSegmentID = errors.New("no free segment number")

// IngestBatchMemory is how long a batch's segment number is remembered: an
// SDK retries a batch within minutes, so after this a repeat is not a retry.
const IngestBatchMemory = 7 * 24 * time.Hour

// ForgetIngestBatches deletes up to limit batch numbers given before
// olderThan and returns how many it deleted (the sweep keeps the table to
// IngestBatchMemory of batches).
func (db *DB) ForgetIngestBatches(ctx context.Context, olderThan time.Time, limit int) (int64, error) {
	ctx, cancel := db.WithTimeout(ctx)
	defer cancel()
	tag, err := db.Pool.Exec(ctx, `
		DELETE FROM ingest_batches AS b
		USING (SELECT project_id, replay_id, batch_key FROM ingest_batches
			WHERE created_at < $1 ORDER BY created_at LIMIT $2
			FOR UPDATE SKIP LOCKED) AS o
		WHERE b.project_id = o.project_id AND b.replay_id = o.replay_id AND b.batch_key = o.batch_key`,
		olderThan, limit)
	if err != nil {
		return 0, fmt.Errorf("forget ingest batches: %w", classify(err))
	}
	return tag.RowsAffected(), nil
}

// Package storetest seeds a replayvault database in bulk for load tests
// and the chaos command's load scenarios: millions of rows in seconds,
// straight into the tables with generate_series, never through Pack. The
// rows are placeholders (one shared blob, a dummy key): they can be
// counted, listed and shredded, not read. Never linked into a deployed
// binary (TestProductionDeps).
package storetest

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/store"
)

// Seeded is what SeedProject wrote.
type Seeded struct {
	// BlobPath is the one blob row every seeded segment points into; its
	// object must exist for the sweep to delete it cleanly once empty
	// (a 1-byte object does: every row is the range [0, 1)).
	BlobPath string
	// Replays are the seeded replays' ids.
	Replays []uuid.UUID
}

// seedChunk is how many replays one INSERT writes.
const seedChunk = 100

// SeedProject inserts replays*perReplay recording segment rows of project
// (and their replay rows) in statements of seedChunk replays.
func SeedProject(ctx context.Context, db *store.DB, project int64, replays, perReplay int) (Seeded, error) {
	now := time.Now().UTC()
	s := Seeded{BlobPath: fmt.Sprintf("r90/%04d/%02d/%02d/%s", now.Year(), now.Month(), now.Day(), uuid.New())}
	kek := uuid.New()
	if _, err := db.Pool.Exec(ctx, `INSERT INTO keks (id, kms_key, wrapped) VALUES ($1, 'storetest', '\x00')`, kek); err != nil {
		return s, fmt.Errorf("seed kek: %w", err)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO blobs (path, retention_days, size, segment_count) VALUES ($1, 90, 1, $2)`,
		s.BlobPath, replays*perReplay); err != nil {
		return s, fmt.Errorf("seed blob: %w", err)
	}
	s.Replays = make([]uuid.UUID, replays)
	for i := range s.Replays {
		s.Replays[i] = uuid.New()
	}
	for first := 0; first < replays; first += seedChunk {
		ids := s.Replays[first:min(first+seedChunk, replays)]
		if _, err := db.Pool.Exec(ctx, `
			INSERT INTO replays (project_id, replay_id, retention_days, first_seen, last_seen, segment_count)
			SELECT $1, r, 90, now(), now(), $3 FROM unnest($2::uuid[]) AS t(r)`, project, ids, perReplay); err != nil {
			return s, fmt.Errorf("seed replays: %w", err)
		}
		if _, err := db.Pool.Exec(ctx, `
			INSERT INTO segments (project_id, replay_id, type, segment_id, blob_path, byte_start, byte_stop,
				encoding, raw_size, event_count, first_ts, last_ts, has_full_snapshot, kek_id, wrapped_dek, expires_at)
			SELECT $1, r, 'recording', s, $3, 0, 1, 'json', 1, 1, 0, 0, false, $4, '\x00', now() + interval '90 days'
			FROM unnest($2::uuid[]) AS t(r), generate_series(0, $5::int - 1) AS s`,
			project, ids, s.BlobPath, kek, perReplay); err != nil {
			return s, fmt.Errorf("seed segments: %w", err)
		}
	}
	return s, nil
}

// ProjectSegments counts project's segment rows.
func ProjectSegments(ctx context.Context, db *store.DB, project int64) (int64, error) {
	var n int64
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM segments WHERE project_id = $1`, project).Scan(&n); err != nil {
		return 0, fmt.Errorf("count segments of project %d: %w", project, err)
	}
	return n, nil
}

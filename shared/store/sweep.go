package store

import (
	"context"
	"fmt"
	"time"
)

// ExpireSegments deletes up to limit segment rows whose expires_at is at or
// before now and returns how many it deleted. Deleting the row destroys the
// segment's wrapped DEK, exactly as a shred does. Rows another transaction
// has locked (a shred deleting them right now) are skipped, not waited for;
// a later call takes them if they are still there.
func (db *DB) ExpireSegments(ctx context.Context, now time.Time, limit int) (int64, error) {
	ctx, cancel := db.WithTimeout(ctx)
	defer cancel()
	tag, err := db.Pool.Exec(ctx, `
		DELETE FROM segments AS s
		USING (SELECT project_id, replay_id, type, segment_id FROM segments
			WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2
			FOR UPDATE SKIP LOCKED) AS e
		WHERE s.project_id = e.project_id AND s.replay_id = e.replay_id
			AND s.type = e.type AND s.segment_id = e.segment_id`, now, limit)
	if err != nil {
		return 0, fmt.Errorf("expire segments: %w", classify(err))
	}
	return tag.RowsAffected(), nil
}

// DeleteEmptyBlobs deletes up to limit blob rows created (and, if a
// compaction moved segments out of them, released) before olderThan that no
// segment row references any more (every segment expired, was shredded or
// was compacted elsewhere), and returns their paths: the objects the caller
// deletes next.
//
// The row goes first and the object only after, so an object is deleted only
// once the database has proved, in the same statement that removed its row,
// that no segment points into it; the foreign key from segments to blobs
// would refuse the delete otherwise. Segment rows are only ever inserted,
// or moved by compaction, together with a new blob row, so a blob that has
// lost its last segment never gains another. If deleting the object then fails, it is an orphan
// that the orphan pass (or the bucket's lifecycle rule) removes later.
func (db *DB) DeleteEmptyBlobs(ctx context.Context, olderThan time.Time, limit int) ([]string, error) {
	ctx, cancel := db.WithTimeout(ctx)
	defer cancel()
	rows, err := db.Pool.Query(ctx, `
		DELETE FROM blobs
		WHERE path IN (
			SELECT path FROM blobs AS b
			WHERE b.created_at < $1 AND (b.released_at IS NULL OR b.released_at < $1)
				AND NOT EXISTS (SELECT 1 FROM segments AS s WHERE s.blob_path = b.path)
			LIMIT $2
			FOR UPDATE OF b SKIP LOCKED)
		AND NOT EXISTS (SELECT 1 FROM segments AS s WHERE s.blob_path = blobs.path)
		RETURNING path`, olderThan, limit)
	if err != nil {
		return nil, fmt.Errorf("delete empty blobs: %w", classify(err))
	}
	defer rows.Close()
	var paths []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("delete empty blobs: %w", err)
		}
		paths = append(paths, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("delete empty blobs: %w", classify(err))
	}
	return paths, nil
}

// MissingBlobs returns the paths, of those given, that have no blob row: for
// an object older than the orphan grace, proof that its flush never
// committed (or that its row was deleted and the object delete failed).
func (db *DB) MissingBlobs(ctx context.Context, paths []string) ([]string, error) {
	ctx, cancel := db.WithTimeout(ctx)
	defer cancel()
	rows, err := db.Pool.Query(ctx, `
		SELECT p FROM unnest($1::text[]) AS t(p)
		WHERE NOT EXISTS (SELECT 1 FROM blobs AS b WHERE b.path = t.p)
		ORDER BY p`, paths)
	if err != nil {
		return nil, fmt.Errorf("find orphans: %w", classify(err))
	}
	defer rows.Close()
	var missing []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("find orphans: %w", err)
		}
		missing = append(missing, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find orphans: %w", classify(err))
	}
	return missing, nil
}

package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/replayvault/replayvault/shared/segment"
)

// CompactCandidate is a replay due for compaction.
type CompactCandidate struct {
	ProjectID int64
	ReplayID  uuid.UUID
	// LastSeen is the replay's last_seen when it was picked: the compaction
	// covers the segments stored up to then.
	LastSeen time.Time
}

// CompactCandidates returns up to limit live replays whose last segment
// arrived before idleBefore and that no compaction has covered since,
// oldest first, after the cursor (nil: from the start).
func (db *DB) CompactCandidates(ctx context.Context, idleBefore time.Time, after *CompactCandidate, limit int) ([]CompactCandidate, error) {
	ctx, cancel := db.WithTimeout(ctx)
	defer cancel()
	var (
		afterSeen time.Time // zero: before everything
		afterP    int64     = -1 << 63
		afterR              = uuid.Nil
	)
	if after != nil {
		afterSeen, afterP, afterR = after.LastSeen, after.ProjectID, after.ReplayID
	}
	var out []CompactCandidate
	err := readOnly(ctx, func() error {
		out = nil
		rows, err := db.Pool.Query(ctx, `
			SELECT project_id, replay_id, last_seen FROM replays
			WHERE deleted_at IS NULL AND (compacted_seen IS NULL OR compacted_seen < last_seen)
				AND last_seen < $1 AND (last_seen, project_id, replay_id) > ($2, $3, $4)
			ORDER BY last_seen, project_id, replay_id
			LIMIT $5`, idleBefore, afterSeen, afterP, afterR, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c CompactCandidate
			if err := rows.Scan(&c.ProjectID, &c.ReplayID, &c.LastSeen); err != nil {
				return err
			}
			out = append(out, c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("compaction candidates: %w", err)
	}
	return out, nil
}

// CompactSegments returns the live segment rows of one replay, every type,
// in the order a compacted object holds them (type, then segment id), with
// BlobPath, ByteStart, ByteStop, Encoding, RawSize, KEKID, WrappedDEK and
// RetentionDays (the retention class of the blob the segment lies in)
// filled: what a compaction needs to copy a sealed range or to open and
// re-encode it.
func (db *DB) CompactSegments(ctx context.Context, project int64, replay uuid.UUID) ([]Segment, error) {
	ctx, cancel := db.WithTimeout(ctx)
	defer cancel()
	var segs []Segment
	err := readOnly(ctx, func() error {
		segs = nil
		rows, err := db.Pool.Query(ctx, `
			SELECT s.type, s.segment_id, s.blob_path, s.byte_start, s.byte_stop, s.encoding, s.raw_size,
				s.kek_id, s.wrapped_dek, b.retention_days
			FROM segments AS s JOIN blobs AS b ON b.path = s.blob_path
			WHERE s.project_id = $1 AND s.replay_id = $2
			ORDER BY s.type, s.segment_id`, project, replay)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			s := Segment{ID: segment.ID{ProjectID: project, ReplayID: replay}}
			var segID, retention int32
			if err := rows.Scan(&s.ID.Type, &segID, &s.BlobPath, &s.ByteStart, &s.ByteStop, &s.Encoding, &s.RawSize,
				&s.KEKID, &s.WrappedDEK, &retention); err != nil {
				return err
			}
			s.ID.SegmentID, s.RetentionDays = int(segID), int(retention)
			segs = append(segs, s)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("compaction segments of %d/%s: %w", project, replay, err)
	}
	return segs, nil
}

// ErrNothingMoved says a compaction commit changed nothing: the replay was
// shredded, or every segment it read has since been deleted or moved. The
// transaction rolled back, so the new object has no blob row.
var ErrNothingMoved = errors.New("compaction moved no segment")

// Move is one segment's new place in a compacted object, with the old place
// it was read from, and the encoding of its bytes there (the old one when
// they were copied; zstd when the compaction re-encoded them, still sealed
// under the row's DEK).
type Move struct {
	ID                          segment.ID
	OldPath                     string
	OldStart, NewStart, NewStop int64
	Encoding                    segment.Encoding
}

// CommitCompaction switches segments to their ranges in the compacted
// object blob, and to their new encoding, in one transaction, and marks
// the replay compacted up to seen. It returns how many segments moved.
//
// Locking follows CommitBatch and the shreds: a share lock on the project
// row, then the replay row's update lock. So a shred that committed first
// is seen as a tombstone (nothing moves: ErrNothingMoved), and a shred that
// comes later waits and then deletes the moved rows, leaving the new
// object to the sweep. A row moves only if it is still where it was read
// (blob path and offset unchanged): rows expired, shredded or moved by
// another compaction in the meantime are left alone, and if none is left
// the whole transaction rolls back. Old blobs are marked released, so the
// sweep keeps their objects a grace period for reads already under way.
func (db *DB) CommitCompaction(ctx context.Context, blob Blob, moves []Move, seen time.Time) (int, error) {
	if len(moves) == 0 {
		return 0, ErrNothingMoved
	}
	project, replay := moves[0].ID.ProjectID, moves[0].ID.ReplayID
	var moved int
	err := db.InTx(ctx, pgx.ReadCommitted, func(ctx context.Context, tx pgx.Tx) error {
		moved = 0
		var projectDead, replayDead bool
		err := tx.QueryRow(ctx, `SELECT deleted_at IS NOT NULL FROM projects WHERE project_id = $1 FOR SHARE`,
			project).Scan(&projectDead)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) { // no row: no project shred yet
			return fmt.Errorf("lock project: %w", err)
		}
		err = tx.QueryRow(ctx, `SELECT deleted_at IS NOT NULL FROM replays WHERE project_id = $1 AND replay_id = $2 FOR UPDATE`,
			project, replay).Scan(&replayDead)
		if err != nil {
			return fmt.Errorf("lock replay: %w", err)
		}
		if projectDead || replayDead {
			return ErrNothingMoved
		}
		if _, err := tx.Exec(ctx,
			`INSERT INTO blobs (path, retention_days, size, segment_count) VALUES ($1, $2, $3, $4)`,
			blob.Path, blob.RetentionDays, blob.Size, len(moves)); err != nil {
			return fmt.Errorf("insert blob: %w", err)
		}
		n := len(moves)
		types, segIDs := make([]string, n), make([]int32, n)
		oldPaths, oldStarts := make([]string, n), make([]int64, n)
		starts, stops := make([]int64, n), make([]int64, n)
		encs := make([]string, n)
		for i, m := range moves {
			types[i], segIDs[i] = m.ID.Type, int32(m.ID.SegmentID)
			oldPaths[i], oldStarts[i] = m.OldPath, m.OldStart
			starts[i], stops[i] = m.NewStart, m.NewStop
			if encs[i] = string(m.Encoding); !m.Encoding.Valid() {
				return fmt.Errorf("segment %s: encoding %q", m.ID, m.Encoding)
			}
		}
		// A row still at the place it was read from holds the bytes the
		// compaction read (rows are never rewritten in place), so its new
		// bytes and encoding match its wrapped DEK.
		tag, err := tx.Exec(ctx, `
			UPDATE segments AS s SET blob_path = $3, byte_start = t.ns, byte_stop = t.ne, encoding = t.enc
			FROM unnest($4::text[], $5::int[], $6::text[], $7::bigint[], $8::bigint[], $9::bigint[], $10::text[])
				AS t(ty, sid, op, os, ns, ne, enc)
			WHERE s.project_id = $1 AND s.replay_id = $2 AND s.type = t.ty AND s.segment_id = t.sid
				AND s.blob_path = t.op AND s.byte_start = t.os`,
			project, replay, blob.Path, types, segIDs, oldPaths, oldStarts, starts, stops, encs)
		if err != nil {
			return fmt.Errorf("move segments: %w", err)
		}
		if moved = int(tag.RowsAffected()); moved == 0 {
			return ErrNothingMoved
		}
		if _, err := tx.Exec(ctx, `
			UPDATE blobs SET segment_count = $2 WHERE path = $1`, blob.Path, moved); err != nil {
			return fmt.Errorf("count blob: %w", err)
		}
		if _, err := tx.Exec(ctx, `
			UPDATE blobs SET released_at = now()
			WHERE path IN (SELECT DISTINCT unnest($1::text[])) AND path <> $2`, oldPaths, blob.Path); err != nil {
			return fmt.Errorf("release old blobs: %w", err)
		}
		return markCompacted(ctx, tx, project, replay, seen)
	})
	if err != nil {
		return 0, fmt.Errorf("commit compaction of %d/%s into %s: %w", project, replay, blob.Path, err)
	}
	return moved, nil
}

// MarkCompacted records that the replay needs no compaction up to seen (it
// is already in one piece, or too large to re-pack).
func (db *DB) MarkCompacted(ctx context.Context, project int64, replay uuid.UUID, seen time.Time) error {
	err := db.InTx(ctx, pgx.ReadCommitted, func(ctx context.Context, tx pgx.Tx) error {
		return markCompacted(ctx, tx, project, replay, seen)
	})
	if err != nil {
		return fmt.Errorf("mark %d/%s compacted: %w", project, replay, err)
	}
	return nil
}

func markCompacted(ctx context.Context, tx pgx.Tx, project int64, replay uuid.UUID, seen time.Time) error {
	_, err := tx.Exec(ctx, `
		UPDATE replays SET compacted_seen = greatest(coalesce(compacted_seen, $3), $3)
		WHERE project_id = $1 AND replay_id = $2`, project, replay, seen)
	if err != nil {
		return fmt.Errorf("mark compacted: %w", err)
	}
	return nil
}

package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/replayvault/replayvault/shared/replaymeta"
	"github.com/replayvault/replayvault/shared/segment"
)

// Replay is a replay's row as the read path reports it, with its project's
// tombstone.
type Replay struct {
	ProjectID     int64
	ReplayID      uuid.UUID
	RetentionDays int
	FirstSeen     time.Time
	LastSeen      time.Time
	SegmentCount  int
	StoredBytes   int64
	RawBytes      int64
	// StartedAtMS and EndedAtMS are the smallest and largest event
	// timestamps seen (ms since the epoch); nil until an event had one.
	StartedAtMS *int64
	EndedAtMS   *int64
	// Meta is what the SDK said about the replay (see replaymeta).
	Meta replaymeta.Meta
	// DeletedAt is the replay's tombstone.
	DeletedAt *time.Time
	// ProjectDeletedAt is the tombstone of the whole project.
	ProjectDeletedAt *time.Time
}

// Shredded reports whether the replay is gone, by its own shred or its
// project's, and when that happened (the earlier of the two).
func (r *Replay) Shredded() (time.Time, bool) {
	switch {
	case r.DeletedAt != nil && r.ProjectDeletedAt != nil:
		if r.ProjectDeletedAt.Before(*r.DeletedAt) {
			return *r.ProjectDeletedAt, true
		}
		return *r.DeletedAt, true
	case r.DeletedAt != nil:
		return *r.DeletedAt, true
	case r.ProjectDeletedAt != nil:
		return *r.ProjectDeletedAt, true
	}
	return time.Time{}, false
}

// ReplayMeta returns the replay's row. It returns ErrNotFound when the
// replay is unknown, unless its project is tombstoned: then every replay of
// the project is gone, and the result carries only ProjectDeletedAt.
func (db *DB) ReplayMeta(ctx context.Context, project int64, replay uuid.UUID) (*Replay, error) {
	ctx, cancel := db.WithTimeout(ctx)
	defer cancel()
	var r *Replay
	err := readOnly(ctx, func() (err error) {
		r, err = replayMeta(ctx, db.Pool, project, replay)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("replay %d/%s: %w", project, replay, err)
	}
	return r, nil
}

// ReplaySegments returns the replay's row and its live segment rows of type
// typ with from <= segment_id <= to, ordered by segment_id, both read in one
// snapshot: a shred that commits meanwhile shows either as a tombstone or
// not at all, never as a replay that has lost its segments. Segments whose
// retention has expired but which the sweep has not deleted yet are left
// out. When the replay is shredded the segments are not read (nil). Errors
// are as for ReplayMeta.
//
// Only the columns the read path needs are filled: ID, BlobPath, ByteStart,
// ByteStop, Encoding, RawSize, EventCount, FirstTS, LastTS,
// HasFullSnapshot, KEKID, WrappedDEK and ExpiresAt.
func (db *DB) ReplaySegments(ctx context.Context, project int64, replay uuid.UUID, typ string, from, to int) (*Replay, []Segment, error) {
	return db.ReplaySegmentsPage(ctx, project, replay, typ, from, to, 0)
}

// ReplaySegmentsPage is ReplaySegments returning at most limit rows (0: no
// limit), the first ones from from on. The next page starts after the last
// row's segment id (keyset paging), so a replay of any length is read in
// pages of bounded memory; each page reads the replay row again, so a shred
// that commits between pages shows as a tombstone.
func (db *DB) ReplaySegmentsPage(ctx context.Context, project int64, replay uuid.UUID, typ string, from, to, limit int) (*Replay, []Segment, error) {
	var (
		meta *Replay
		segs []Segment
	)
	err := readOnly(ctx, func() error {
		return db.InTx(ctx, pgx.RepeatableRead, func(ctx context.Context, tx pgx.Tx) error {
			var err error
			segs = nil
			if meta, err = replayMeta(ctx, tx, project, replay); err != nil {
				return err
			}
			if _, gone := meta.Shredded(); gone {
				return nil
			}
			segs, err = replaySegments(ctx, tx, project, replay, typ, from, to, limit)
			return err
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("replay %d/%s segments: %w", project, replay, err)
	}
	return meta, segs, nil
}

// readOnly runs fn, a read-only query, and runs it once more when the first
// attempt lost its connection: a pooled connection may have broken while
// idle (a failover, a restart), and reading again is harmless.
func readOnly(ctx context.Context, fn func() error) error {
	err := fn()
	if err != nil && connLost(err) && ctx.Err() == nil {
		err = fn()
	}
	return classify(err)
}

// querier is what both a pool and a transaction offer.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func replayMeta(ctx context.Context, q querier, project int64, replay uuid.UUID) (*Replay, error) {
	var (
		r         = Replay{ProjectID: project, ReplayID: replay}
		found     bool
		retention *int32
		first     *time.Time
		last      *time.Time
		count     *int32
		stored    *int64
		raw       *int64
		src       [5]*string
	)
	// The outer row always exists, so one query tells an unknown replay
	// from one in a shredded project.
	err := q.QueryRow(ctx, `
		SELECT p.deleted_at, r.replay_id IS NOT NULL, r.retention_days, r.first_seen, r.last_seen,
			r.segment_count, r.stored_bytes, r.raw_bytes, r.started_at_ms, r.ended_at_ms, r.deleted_at,
			r.source, r.source_id, r.replay_type, r.sdk, r.user_agent_family, r.urls, r.error_ids, r.trace_ids
		FROM (SELECT $1::bigint AS project_id, $2::uuid AS replay_id) AS k
		LEFT JOIN projects p ON p.project_id = k.project_id
		LEFT JOIN replays r ON r.project_id = k.project_id AND r.replay_id = k.replay_id`,
		project, replay).Scan(&r.ProjectDeletedAt, &found, &retention, &first, &last,
		&count, &stored, &raw, &r.StartedAtMS, &r.EndedAtMS, &r.DeletedAt,
		&src[0], &src[1], &src[2], &src[3], &src[4], &r.Meta.URLs, &r.Meta.ErrorIDs, &r.Meta.TraceIDs)
	if err != nil {
		return nil, err
	}
	if !found {
		if r.ProjectDeletedAt != nil {
			return &r, nil
		}
		return nil, ErrNotFound
	}
	r.RetentionDays = int(*retention)
	r.FirstSeen, r.LastSeen = *first, *last
	r.SegmentCount = int(*count)
	r.StoredBytes, r.RawBytes = *stored, *raw
	for i, p := range []*string{&r.Meta.Source, &r.Meta.SourceID, &r.Meta.ReplayType, &r.Meta.SDK, &r.Meta.UserAgentFamily} {
		if src[i] != nil {
			*p = *src[i]
		}
	}
	return &r, nil
}

func replaySegments(ctx context.Context, q querier, project int64, replay uuid.UUID, typ string, from, to, limit int) ([]Segment, error) {
	return segmentRows(ctx, q, project, replay, typ, limit, `AND segment_id BETWEEN $4 AND $5`, clampInt32(from), clampInt32(to))
}

// segmentRows reads the live segment rows of one replay and type that also
// meet cond, a constant SQL condition over parameters $4 and on (args), in
// segment order, at most limit of them (0: all).
func segmentRows(ctx context.Context, q querier, project int64, replay uuid.UUID, typ string, limit int, cond string, args ...any) ([]Segment, error) {
	var lim *int32 // LIMIT NULL: all rows
	if limit > 0 {
		l := clampInt32(limit)
		lim = &l
	}
	args = append(append([]any{project, replay, typ}, args...), lim)
	rows, err := q.Query(ctx, `
		SELECT segment_id, blob_path, byte_start, byte_stop, encoding, raw_size, event_count,
			first_ts, last_ts, has_full_snapshot, kek_id, wrapped_dek, expires_at
		FROM segments
		WHERE project_id = $1 AND replay_id = $2 AND type = $3 AND expires_at > now()
			`+cond+`
		ORDER BY segment_id
		LIMIT $`+strconv.Itoa(len(args)), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var segs []Segment
	for rows.Next() {
		s := Segment{ID: segment.ID{ProjectID: project, ReplayID: replay, Type: typ}}
		var (
			segID, events int32
			enc           string
		)
		if err := rows.Scan(&segID, &s.BlobPath, &s.ByteStart, &s.ByteStop, &enc, &s.RawSize, &events,
			&s.FirstTS, &s.LastTS, &s.HasFullSnapshot, &s.KEKID, &s.WrappedDEK, &s.ExpiresAt); err != nil {
			return nil, err
		}
		s.ID.SegmentID = int(segID)
		s.Encoding = segment.Encoding(enc)
		s.EventCount = int(events)
		segs = append(segs, s)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return segs, nil
}

// clampInt32 fits a segment bound into the column's type.
func clampInt32(v int) int32 {
	const lo, hi = -1 << 31, 1<<31 - 1
	return int32(min(max(v, lo), hi))
}

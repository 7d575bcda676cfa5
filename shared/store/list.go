package store

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// ListFilter selects replays for ListReplays. Zero fields do not filter.
type ListFilter struct {
	// FromTS and ToTS bound the replay's first event time (ms since the
	// epoch), inclusive; ToTS 0 means no upper bound.
	FromTS, ToTS int64
	// MinDurationMS keeps replays whose last event is at least this long
	// after the first.
	MinDurationMS int64
	// MinSegments keeps replays with at least this many stored segments.
	MinSegments int
	// URL (a substring of a page the replay visited) and ErrorID (an error
	// event seen during the replay) filter on the metadata Ingest records
	// per replay (the replay row's urls and error_ids); replays sent
	// without it never match them.
	URL     string
	ErrorID string
}

// ListCursor is a position in the list: the (started_at_ms, replay_id) of
// the last replay returned, or of the last one examined.
type ListCursor struct {
	StartedAtMS int64
	ReplayID    uuid.UUID
}

// ListPage is one page of ListReplays.
type ListPage struct {
	Replays []Replay
	// Next is where the next page starts; nil at the end of the list. A
	// page can be short, even empty, with a Next: the scan budget ran out
	// before the page filled.
	Next *ListCursor
}

// ListReplays returns up to limit live replays of project that match f,
// newest first (by first event time, then replay id, descending), after
// the cursor (nil: from the newest). Replays with no timestamped event yet
// are not listed.
//
// Cost is bounded whatever the filter: the index on (project_id,
// started_at_ms, replay_id) is walked for at most scan rows; the filters
// that the index does not serve (duration, segment count) apply to those
// rows only, and when the budget runs out first the page ends early with a
// cursor at the last row examined.
func (db *DB) ListReplays(ctx context.Context, project int64, f ListFilter, after *ListCursor, limit, scan int) (ListPage, error) {
	ctx, cancel := db.WithTimeout(ctx)
	defer cancel()
	to := f.ToTS
	if to <= 0 {
		to = math.MaxInt64
	}
	afterTS, afterID := int64(math.MaxInt64), uuid.Max
	if after != nil {
		afterTS, afterID = after.StartedAtMS, after.ReplayID
	}
	var page ListPage
	err := readOnly(ctx, func() error {
		return db.InTx(ctx, pgx.RepeatableRead, func(ctx context.Context, tx pgx.Tx) error {
			page = ListPage{}
			// The scan is not materialized: the outer LIMIT stops the index
			// walk as soon as the page is full.
			rows, err := tx.Query(ctx, `
				SELECT replay_id, retention_days, first_seen, last_seen, segment_count, stored_bytes,
					raw_bytes, started_at_ms, ended_at_ms
				FROM (SELECT * FROM replays
					WHERE `+listScan+`
					ORDER BY started_at_ms DESC, replay_id DESC
					LIMIT $6) AS scanned
				WHERE `+listFilters+`
				ORDER BY started_at_ms DESC, replay_id DESC
				LIMIT $9`,
				project, f.FromTS, to, afterTS, afterID, scan, f.MinDurationMS, f.MinSegments, limit+1, f.URL, f.ErrorID)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				r := Replay{ProjectID: project}
				var count int32
				if err := rows.Scan(&r.ReplayID, &r.RetentionDays, &r.FirstSeen, &r.LastSeen, &count, &r.StoredBytes,
					&r.RawBytes, &r.StartedAtMS, &r.EndedAtMS); err != nil {
					return err
				}
				r.SegmentCount = int(count)
				page.Replays = append(page.Replays, r)
			}
			if err := rows.Err(); err != nil {
				return err
			}
			if len(page.Replays) > limit {
				page.Replays = page.Replays[:limit]
				last := page.Replays[limit-1]
				page.Next = &ListCursor{StartedAtMS: *last.StartedAtMS, ReplayID: last.ReplayID}
				return nil
			}
			// A short page: either the list ended, or the scan budget ran
			// out first and the next page starts after the last row
			// examined.
			var c ListCursor
			err = tx.QueryRow(ctx, `
				SELECT started_at_ms, replay_id FROM replays
				WHERE `+listScan+`
				ORDER BY started_at_ms DESC, replay_id DESC
				OFFSET $6 - 1 LIMIT 1`,
				project, f.FromTS, to, afterTS, afterID, scan).Scan(&c.StartedAtMS, &c.ReplayID)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				return nil
			case err != nil:
				return err
			}
			page.Next = &c
			return nil
		})
	})
	if err != nil {
		return ListPage{}, fmt.Errorf("list replays of project %d: %w", project, err)
	}
	return page, nil
}

// listScan is the part of the list query the index serves: one project's
// live replays with a first event time in [$2, $3], after the cursor
// ($4, $5).
const listScan = `project_id = $1 AND deleted_at IS NULL AND started_at_ms IS NOT NULL
	AND started_at_ms BETWEEN $2 AND $3 AND (started_at_ms, replay_id) < ($4, $5)`

// listFilters are the conditions the index does not serve, over $7
// (minimum duration, ms), $8 (minimum segments), $10 (a URL substring, ”
// for any) and $11 (an error id, ” for any). They apply to the scanned
// rows only, so their cost is bounded by the scan budget like the others'.
const listFilters = `coalesce(ended_at_ms - started_at_ms, 0) >= $7 AND segment_count >= $8
	AND ($10::text = '' OR EXISTS (SELECT 1 FROM unnest(urls) AS u WHERE strpos(u, $10::text) > 0))
	AND ($11::text = '' OR $11::text = ANY (error_ids))`

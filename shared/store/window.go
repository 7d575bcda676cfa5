package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Window asks for the segments that show a span of a replay's time.
type Window struct {
	// FromTS and ToTS bound the span, in ms since the epoch, inclusive.
	FromTS, ToTS int64
	// Chain asks for the snapshot chain: the window starts at the last
	// segment with a full snapshot whose first event is at or before
	// FromTS (rrweb recordings need one to draw anything). Without it the
	// window starts at the first segment with an event at or after FromTS
	// (console, network and timeline slices).
	Chain bool
	// Before, with Chain, looks for the snapshot segment among segments
	// below this id only; 0 means no bound, and a negative value starts
	// the window at the replay's beginning. Serve uses it when the nearest
	// snapshot segment turns out to have its snapshot after FromTS.
	Before int
}

// WindowInfo is what a window read learned besides the rows.
type WindowInfo struct {
	// Start is the segment the window starts at; -1 when it starts at the
	// replay's beginning because no snapshot segment qualified.
	Start int
	// More says whether the replay has events after ToTS: the player's next
	// window starts at ToTS+1.
	More bool
}

// ReplayWindow returns the replay's row and the live segment rows of type
// typ that a window read needs, in segment order, with the replay row and
// the rows read in one snapshot (see ReplaySegments, whose errors and
// filled columns it shares):
//
//   - with w.Chain, every segment from the start segment (see Window) on
//     whose first timestamp is at or before w.ToTS; a segment without
//     timestamps (first_ts 0) counts as early, so it is included;
//   - without, every segment with an event in [w.FromTS, w.ToTS].
//
// Only segment metadata is read (first_ts, last_ts, has_full_snapshot),
// never the segments themselves.
func (db *DB) ReplayWindow(ctx context.Context, project int64, replay uuid.UUID, typ string, w Window) (*Replay, []Segment, WindowInfo, error) {
	var (
		meta *Replay
		segs []Segment
		info WindowInfo
	)
	before := int32(1<<31 - 1)
	if w.Before > 0 {
		before = clampInt32(w.Before)
	}
	err := readOnly(ctx, func() error {
		return db.InTx(ctx, pgx.RepeatableRead, func(ctx context.Context, tx pgx.Tx) error {
			var err error
			segs, info = nil, WindowInfo{Start: -1}
			if meta, err = replayMeta(ctx, tx, project, replay); err != nil {
				return err
			}
			if _, gone := meta.Shredded(); gone {
				return nil
			}
			if w.Chain {
				var start *int32
				if w.Before < 0 {
					before = -1
				}
				if err := tx.QueryRow(ctx, `
					SELECT max(segment_id) FROM segments
					WHERE project_id = $1 AND replay_id = $2 AND type = $3 AND has_full_snapshot
						AND first_ts > 0 AND first_ts <= $4 AND segment_id < $5 AND expires_at > now()`,
					project, replay, typ, w.FromTS, before).Scan(&start); err != nil {
					return fmt.Errorf("snapshot segment: %w", err)
				}
				if start != nil {
					info.Start = int(*start)
				}
				segs, err = segmentRows(ctx, tx, project, replay, typ, 0, `
					AND segment_id >= $4 AND first_ts <= $5`, int32(info.Start), w.ToTS)
			} else {
				segs, err = segmentRows(ctx, tx, project, replay, typ, 0, `
					AND last_ts >= $4 AND first_ts <= $5`, w.FromTS, w.ToTS)
				if err == nil && len(segs) > 0 {
					info.Start = segs[0].ID.SegmentID
				}
			}
			if err != nil {
				return err
			}
			return tx.QueryRow(ctx, `
				SELECT EXISTS (SELECT 1 FROM segments
					WHERE project_id = $1 AND replay_id = $2 AND type = $3 AND last_ts > $4 AND expires_at > now())`,
				project, replay, typ, w.ToTS).Scan(&info.More)
		})
	})
	if err != nil {
		return nil, nil, WindowInfo{}, fmt.Errorf("replay %d/%s window: %w", project, replay, err)
	}
	return meta, segs, info, nil
}

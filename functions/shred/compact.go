package shred

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/store"
)

// CompactReport is what one compaction pass did.
type CompactReport struct {
	// ReplaysCompacted were re-packed into one object each.
	ReplaysCompacted int64 `json:"replays_compacted"`
	// SegmentsMoved is how many segment rows now point into those objects.
	SegmentsMoved int64 `json:"segments_moved"`
	// BytesCopied is the sealed bytes written to them.
	BytesCopied int64 `json:"bytes_copied"`
	// ReplaysFailed could not be compacted this time (a read or write
	// failed); the next pass tries again.
	ReplaysFailed int64 `json:"replays_failed"`
}

// compactPage is how many candidates one lookup returns.
const compactPage = 100

// compactStep names the points where a compaction can stop half way, for
// the tests that crash it there.
type compactStep string

const (
	stepRead   compactStep = "read"   // the old ranges are read
	stepUpload compactStep = "upload" // the new object is written
	stepCommit compactStep = "commit" // the rows point into it
)

// errCrash is what a test's crash hook returns.
var errCrash = errors.New("crash")

// Compact re-packs idle replays, oldest first, until deadline: each
// replay's live segments are copied, still sealed, into one new object in
// (type, segment id) order, and the rows are switched to their new ranges
// in one transaction (store.CommitCompaction). Nothing is decrypted: a
// segment's AAD binds its identity, not its place, so a sealed range opens
// the same wherever it lies. The old objects are left to the sweep, which
// deletes each once no row points into it and a grace period has passed.
//
// Every step is safe to stop at: before the commit the rows still point at
// the old objects (an uploaded object without a blob row is an orphan the
// sweep removes); the commit is atomic; and a replay already in one piece
// is only marked, so running again changes nothing.
func (s *Service) Compact(ctx context.Context, deadline time.Time) (rep CompactReport, complete bool, err error) {
	if s.cfg.CompactIdle <= 0 {
		return rep, true, nil // compaction is off
	}
	idleBefore := s.now().Add(-s.cfg.CompactIdle)
	var after *store.CompactCandidate
	for s.now().Before(deadline) {
		cands, err := s.db.CompactCandidates(ctx, idleBefore, after, compactPage)
		if err != nil {
			return rep, false, err
		}
		for _, c := range cands {
			if !s.now().Before(deadline) {
				return rep, false, nil
			}
			moved, copied, err := s.compactReplay(ctx, c)
			switch {
			case errors.Is(err, store.ErrUnavailable):
				return rep, false, err
			case err != nil:
				// One replay's trouble (an object the sweep just removed
				// because its segments expired, a failed write) must not
				// stop the others; the next pass retries it.
				rep.ReplaysFailed++
				slog.WarnContext(ctx, "compaction failed", "project_id", c.ProjectID, "replay_id", c.ReplayID, "error", err)
			case moved > 0:
				rep.ReplaysCompacted++
				rep.SegmentsMoved += int64(moved)
				rep.BytesCopied += copied
			}
		}
		if len(cands) < compactPage {
			return rep, true, nil
		}
		after = &cands[len(cands)-1]
	}
	return rep, false, nil
}

// compactReplay re-packs one replay and returns how many segments moved and
// how many bytes the new object holds.
func (s *Service) compactReplay(ctx context.Context, c store.CompactCandidate) (int, int64, error) {
	segs, err := s.db.CompactSegments(ctx, c.ProjectID, c.ReplayID)
	if err != nil {
		return 0, 0, err
	}
	var total int64
	retention := 0
	for _, sg := range segs {
		total += sg.ByteStop - sg.ByteStart
		retention = max(retention, sg.RetentionDays)
	}
	if onePiece(segs) || total > s.cfg.CompactMaxBytes {
		// Nothing to gain, or more than one pass should hold in memory:
		// mark it so it is not looked at again until a new segment comes.
		return 0, 0, s.db.MarkCompacted(ctx, c.ProjectID, c.ReplayID, c.LastSeen)
	}

	buf, err := s.readRanges(ctx, segs, total)
	if err == nil {
		err = s.crash(stepRead)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("compact %d/%s: %w", c.ProjectID, c.ReplayID, err)
	}
	// The retention class of the new object is the longest of the old
	// ones, so the bucket's lifecycle rule never deletes a segment's bytes
	// before its key expires.
	path := objectName(retention, s.now())
	if err := s.blobs.Create(ctx, path, buf); err != nil {
		return 0, 0, fmt.Errorf("compact %d/%s: write %s: %w", c.ProjectID, c.ReplayID, path, err)
	}
	if err := s.crash(stepUpload); err != nil {
		return 0, 0, err
	}
	moves := make([]store.Move, len(segs))
	var off int64
	for i, sg := range segs {
		n := sg.ByteStop - sg.ByteStart
		moves[i] = store.Move{ID: sg.ID, OldPath: sg.BlobPath, OldStart: sg.ByteStart, NewStart: off, NewStop: off + n}
		off += n
	}
	moved, err := s.db.CommitCompaction(ctx, store.Blob{Path: path, RetentionDays: retention, Size: total}, moves, c.LastSeen)
	if errors.Is(err, store.ErrNothingMoved) {
		// Rolled back (shredded meanwhile, or nothing left): no row can
		// point into the object, so it goes now rather than as an orphan.
		if derr := s.blobs.Delete(context.WithoutCancel(ctx), path); derr != nil {
			slog.WarnContext(ctx, "compaction: delete unused object", "object", path, "error", derr)
		}
		return 0, 0, nil
	}
	if err != nil {
		// The commit's outcome may be unknown: leave the object to the
		// orphan pass, which deletes it only if no blob row names it.
		return 0, 0, err
	}
	if err := s.crash(stepCommit); err != nil {
		return moved, total, err
	}
	return moved, total, nil
}

// onePiece reports whether segs already lie back to back, in order, in one
// object (or there is at most one).
func onePiece(segs []store.Segment) bool {
	for i := 1; i < len(segs); i++ {
		if segs[i].BlobPath != segs[0].BlobPath || segs[i].ByteStart != segs[i-1].ByteStop {
			return false
		}
	}
	return true
}

// readRanges reads the sealed bytes of segs, in order, into one buffer of
// size total. Ranges that follow each other in one object are read
// together; reads run in parallel, bounded by DeleteParallelism.
func (s *Service) readRanges(ctx context.Context, segs []store.Segment, total int64) ([]byte, error) {
	buf := make([]byte, total)
	type run struct {
		path       string
		start, end int64 // in the old object
		at         int64 // in buf
	}
	var runs []run
	var off int64
	for _, sg := range segs {
		n := sg.ByteStop - sg.ByteStart
		if k := len(runs) - 1; k >= 0 && runs[k].path == sg.BlobPath && runs[k].end == sg.ByteStart {
			runs[k].end = sg.ByteStop
		} else {
			runs = append(runs, run{sg.BlobPath, sg.ByteStart, sg.ByteStop, off})
		}
		off += n
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		sem   = make(chan struct{}, max(1, s.cfg.DeleteParallelism))
	)
	for _, r := range runs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			b, err := s.blobs.ReadRange(ctx, r.path, r.start, r.end-r.start)
			if err == nil && int64(len(b)) != r.end-r.start {
				err = fmt.Errorf("read %s [%d,%d): got %d bytes", r.path, r.start, r.end, len(b))
			}
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
					cancel()
				}
				mu.Unlock()
				return
			}
			copy(buf[r.at:], b)
		}()
	}
	wg.Wait()
	return buf, first
}

// objectName names a new object the way the packer does:
// r{retention}/yyyy/mm/dd/{uuid}, so the lifecycle rule and the orphan
// pass treat it alike.
func objectName(retention int, t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("r%d/%04d/%02d/%02d/%s", retention, t.Year(), t.Month(), t.Day(), uuid.New())
}

// crash returns the test hook's error for step, if a test set one.
func (s *Service) crash(step compactStep) error {
	if s.crashAt == nil {
		return nil
	}
	return s.crashAt(step)
}

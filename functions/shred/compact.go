package shred

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/segment"
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
	// BytesRead is the sealed bytes of those segments before: with
	// re-encoding on, BytesCopied/BytesRead is what it saved in storage.
	BytesRead int64 `json:"bytes_read"`
	// SegmentsReencoded were opened and re-compressed to zstd (with
	// COMPACT_ZSTD_LEVEL set); the others were copied still sealed.
	SegmentsReencoded int64 `json:"segments_reencoded,omitempty"`
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
	stepRead     compactStep = "read"     // the old ranges are read
	stepReencode compactStep = "reencode" // segments are re-encoded (when on)
	stepUpload   compactStep = "upload"   // the new object is written
	stepCommit   compactStep = "commit"   // the rows point into it
)

// errCrash is what a test's crash hook returns.
var errCrash = errors.New("crash")

// Compact re-packs idle replays, oldest first, until deadline: each
// replay's live segments are written into one new object in (type, segment
// id) order, and the rows are switched to their new ranges in one
// transaction (store.CommitCompaction). The old objects are left to the
// sweep, which deletes each once no row points into it and a grace period
// has passed.
//
// With Config.CompactLevel unset the segments are copied still sealed and
// nothing is decrypted: a segment's AAD binds its identity, not its place,
// so a sealed range opens the same wherever it lies. With it set, each
// segment not yet zstd (as SDKs upload gzip) is opened, decoded (bounded by
// MaxDecompressed), re-compressed to zstd at that level and sealed again
// under the same wrapped DEK and identity with a fresh nonce
// (crypt.Reseal): deleting the row's wrapped DEK still shreds both the old
// and the new bytes, and no KMS wrap is needed. Reads of the replay then
// decode zstd, 2–3× cheaper in CPU than gzip. The plaintext is only in
// Shred's memory and is never logged.
//
// Every step is safe to stop at: before the commit the rows still point at
// the old objects (an uploaded object without a blob row is an orphan the
// sweep removes); the commit is atomic; and a replay already in one piece
// is only marked, so running again changes nothing.
func (s *Service) Compact(ctx context.Context, deadline time.Time) (rep CompactReport, complete bool, err error) {
	if s.cfg.CompactIdle <= 0 {
		return rep, true, nil // compaction is off
	}
	if s.cfg.CompactLevel != 0 && s.keks == nil {
		return rep, false, errors.New("compaction re-encodes segments but Shred has no KEK cache (WithKEKs)")
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
			res, err := s.compactReplay(ctx, c)
			switch {
			case errors.Is(err, store.ErrUnavailable):
				return rep, false, err
			case err != nil:
				// One replay's trouble (an object the sweep just removed
				// because its segments expired, a failed write) must not
				// stop the others; the next pass retries it.
				rep.ReplaysFailed++
				slog.WarnContext(ctx, "compaction failed", "project_id", c.ProjectID, "replay_id", c.ReplayID, "error", err)
			case res.moved > 0:
				rep.ReplaysCompacted++
				rep.SegmentsMoved += int64(res.moved)
				rep.BytesCopied += res.written
				rep.BytesRead += res.read
				rep.SegmentsReencoded += int64(res.reencoded)
			}
		}
		if len(cands) < compactPage {
			return rep, true, nil
		}
		after = &cands[len(cands)-1]
	}
	return rep, false, nil
}

// compacted is what compacting one replay did.
type compacted struct {
	moved         int   // segment rows switched to the new object
	read, written int64 // sealed bytes before and in the new object
	reencoded     int   // segments re-encoded to zstd
}

// compactReplay re-packs one replay.
func (s *Service) compactReplay(ctx context.Context, c store.CompactCandidate) (compacted, error) {
	var res compacted
	segs, err := s.db.CompactSegments(ctx, c.ProjectID, c.ReplayID)
	if err != nil {
		return res, err
	}
	var total int64
	retention := 0
	for _, sg := range segs {
		total += sg.ByteStop - sg.ByteStart
		retention = max(retention, sg.RetentionDays)
	}
	if (onePiece(segs) && !s.reencodes(segs)) || total > s.cfg.CompactMaxBytes {
		// Nothing to gain, or more than one pass should hold in memory:
		// mark it so it is not looked at again until a new segment comes.
		return res, s.db.MarkCompacted(ctx, c.ProjectID, c.ReplayID, c.LastSeen)
	}

	buf, err := s.readRanges(ctx, segs, total)
	if err == nil {
		err = s.crash(stepRead)
	}
	if err != nil {
		return res, fmt.Errorf("compact %d/%s: %w", c.ProjectID, c.ReplayID, err)
	}
	// Where each segment lies in buf, and with which encoding.
	places := make([]place, len(segs))
	var off int64
	for i, sg := range segs {
		n := sg.ByteStop - sg.ByteStart
		places[i] = place{off, off + n, sg.Encoding}
		off += n
	}
	if s.reencodes(segs) {
		buf, res.reencoded, err = s.reencode(ctx, segs, buf, places)
		if err == nil {
			err = s.crash(stepReencode)
		}
		if err != nil {
			return res, fmt.Errorf("compact %d/%s: %w", c.ProjectID, c.ReplayID, err)
		}
	}
	// The retention class of the new object is the longest of the old
	// ones, so the bucket's lifecycle rule never deletes a segment's bytes
	// before its key expires.
	path := objectName(retention, s.now())
	if err := s.blobs.Create(ctx, path, buf); err != nil {
		return res, fmt.Errorf("compact %d/%s: write %s: %w", c.ProjectID, c.ReplayID, path, err)
	}
	if err := s.crash(stepUpload); err != nil {
		return res, err
	}
	moves := make([]store.Move, len(segs))
	for i, sg := range segs {
		p := places[i]
		moves[i] = store.Move{ID: sg.ID, OldPath: sg.BlobPath, OldStart: sg.ByteStart, NewStart: p.start, NewStop: p.stop, Encoding: p.enc}
	}
	size := int64(len(buf))
	moved, err := s.db.CommitCompaction(ctx, store.Blob{Path: path, RetentionDays: retention, Size: size}, moves, c.LastSeen)
	if errors.Is(err, store.ErrNothingMoved) {
		// Rolled back (shredded meanwhile, or nothing left): no row can
		// point into the object, so it goes now rather than as an orphan.
		if derr := s.blobs.Delete(context.WithoutCancel(ctx), path); derr != nil {
			slog.WarnContext(ctx, "compaction: delete unused object", "object", path, "error", derr)
		}
		return compacted{}, nil
	}
	if err != nil {
		// The commit's outcome may be unknown: leave the object to the
		// orphan pass, which deletes it only if no blob row names it.
		return compacted{}, err
	}
	res.moved, res.read, res.written = moved, total, size
	if err := s.crash(stepCommit); err != nil {
		return res, err
	}
	return res, nil
}

// place is a segment's range in a compacted object and its encoding there.
type place struct {
	start, stop int64
	enc         segment.Encoding
}

// reencodes reports whether compaction re-encodes some of segs.
func (s *Service) reencodes(segs []store.Segment) bool {
	if s.cfg.CompactLevel == 0 {
		return false
	}
	for _, sg := range segs {
		if sg.Encoding != segment.Zstd {
			return true
		}
	}
	return false
}

// reencode returns the object holding segs with every segment not yet zstd
// opened, decoded (at most MaxDecompressed bytes), re-compressed to zstd at
// CompactLevel and sealed again under its own wrapped DEK and identity
// with a fresh nonce; zstd ones, and any that do not open or decode, are
// copied still sealed. buf holds segs'
// sealed bytes at places, which are updated to the new object. Segments
// are done one at a time, so beyond buf and the result at most one
// segment's plaintext is held.
//
// Errors name segments, never their bytes.
func (s *Service) reencode(ctx context.Context, segs []store.Segment, buf []byte, places []place) ([]byte, int, error) {
	out := make([]byte, 0, len(buf))
	n := 0
	for i, sg := range segs {
		p := &places[i]
		sealed := buf[p.start:p.stop]
		start := int64(len(out))
		ct, err := sealed, error(nil)
		if p.enc != segment.Zstd {
			ct, err = s.reseal(ctx, &sg, sealed)
		}
		var bad *segment.InvalidError
		switch {
		case errors.Is(err, crypt.ErrIntegrity) || errors.As(err, &bad):
			// Bytes that do not open or decode (Serve refuses them too)
			// are copied as they are, as with re-encoding off, rather
			// than holding the whole replay back on every pass.
			slog.WarnContext(ctx, "compaction: segment copied without re-encoding", "segment", sg.ID.String(), "error", err)
			ct = sealed
		case err != nil:
			return nil, 0, err // KMS or the database: the next pass retries
		case p.enc != segment.Zstd:
			p.enc = segment.Zstd
			n++
		}
		out = append(out, ct...)
		p.start, p.stop = start, int64(len(out))
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
	}
	return out, n, nil
}

// reseal opens one sealed segment and returns it as zstd, sealed again
// under its wrapped DEK.
func (s *Service) reseal(ctx context.Context, sg *store.Segment, sealed []byte) ([]byte, error) {
	kek, err := s.keks.Get(ctx, sg.KEKID)
	if err != nil {
		return nil, fmt.Errorf("segment %s: %w", sg.ID, err)
	}
	aad := sg.ID.AAD()
	pt, err := crypt.Open(kek, aad, sealed, sg.WrappedDEK)
	if err != nil {
		return nil, fmt.Errorf("open segment %s: %w", sg.ID, err)
	}
	raw, err := segment.Decode(sg.Encoding, pt, s.cfg.MaxDecompressed)
	if err != nil {
		return nil, fmt.Errorf("decode segment %s: %w", sg.ID, err)
	}
	z := segment.CompressLevel(raw, s.cfg.CompactLevel)
	clear(raw)
	clear(pt)
	ct, err := crypt.Reseal(kek, aad, sg.WrappedDEK, z)
	clear(z)
	if err != nil {
		return nil, fmt.Errorf("reseal segment %s: %w", sg.ID, err)
	}
	return ct, nil
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

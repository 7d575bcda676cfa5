package serve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
)

// fetcher runs a read plan: it issues the ranged reads in the order the
// writer needs them, at most ReadParallelism at a time, decrypts each
// segment as its read completes, and hands the segments to the writer in
// segment order through next, which decodes each as the writer takes it.
//
// Memory is bounded by a sliding window and by the instance's budget. held
// counts the reads in flight (their sealed bytes) and the decrypted
// segments not yet taken by the writer (their buffers' capacity); a
// segment is decoded only when the writer takes it, so only that one is
// held decoded, and a read's size is its stored size however well its
// segments compress. Before its first read the fetcher claims a lease from
// the budget (see budget): its page of rows plus what the reads the writer
// waits for and its decoded segment can hold at once (leaseBytes), waiting
// while the instance is full. The read holding the segment the writer
// waits for is charged to the lease, so it starts at once; read-ahead is
// charged to the budget, and starts only while held stays within
// WindowBytes, fewer than MaxReadsAhead reads are unfinished and the
// budget has room. The planner caps a read at MaxReadBytes, and its span
// limit keeps segments read ahead close to the writer.
type fetcher struct {
	ctx    context.Context
	cancel context.CancelFunc
	rows   []store.Segment
	reads  []read
	owner  []int
	blobs  blob.Store
	keks   *crypt.KEKCache
	cfg    Config
	budget *budget // the instance's, shared with every request
	lease  int64   // claimed from budget for the fetcher's life

	ready []chan struct{} // per segment: closed once plain and errs are set
	plain [][]byte        // per segment: the decrypted bytes, nil once taken
	errs  []error         // per segment

	failOnce sync.Once
	failed   chan struct{} // closed at the first failed read
	failErr  error

	wake chan struct{} // pokes the scheduler (capacity 1)
	wg   sync.WaitGroup

	mu       sync.Mutex
	want     int    // the segment the writer takes next (or waits for)
	inflight int    // reads in flight
	held     int64  // bytes in flight or decrypted and not yet taken
	free     int64  // of the lease: not used by rows or a read
	pooled   int64  // of held: charged to the budget, not the lease
	leased   []bool // per read: charged to the lease
	unread   int    // reads started whose segments are not all taken
	left     []int  // per read: segments not yet taken
	// The segment the writer decoded last, held until its next call: its
	// bytes charged to the lease, and past it to the budget (a row whose
	// raw size understates the segment). scratch is its storage, reused
	// for the next.
	docLeased, docPooled int64
	scratch              []byte
	docMax               int64 // what the lease has for it: see leaseBytes

	stats fetchStats
}

// firstReadBytes caps the first read: about 10 ms of transfer from GCS on
// top of its latency, where a full MAX_READ_BYTES read could add a hundred
// or more before the first byte can leave. Costs at most one extra read.
const firstReadBytes = 1 << 20

// fetchStats describe one request's reads, for the log.
type fetchStats struct {
	Reads     int
	BytesRead int64
	PeakHeld  int64
	// Forced counts the reads the writer needed that did not fit the
	// lease and were taken past the instance's budget (see budget).
	Forced int
}

// newFetcher plans the reads of rows, claims the lease for them (see
// leaseBytes) and rowBytes, the rows' own cost, waiting while the
// instance's budget is full, and starts fetching; stop must be called when the writer is done.
// It fails only when ctx ends while it waits.
func newFetcher(ctx context.Context, cfg Config, blobs blob.Store, keks *crypt.KEKCache, bud *budget, rows []store.Segment, rowBytes int64) (*fetcher, error) {
	reads, owner := plan(rows, planLimits{
		gap:       cfg.CoalesceGapBytes,
		maxRead:   cfg.MaxReadBytes,
		firstRead: firstReadBytes,
		span:      cfg.WindowBytes,
	})
	lease, err := bud.claim(ctx, rowBytes+leaseBytes(rows, reads))
	if err != nil {
		return nil, fmt.Errorf("wait for memory: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	f := &fetcher{
		ctx: ctx, cancel: cancel,
		lease: lease, free: max(0, lease-rowBytes), docMax: maxDecoded(rows),
		leased: make([]bool, len(reads)),
		rows:   rows, reads: reads, owner: owner,
		blobs: blobs, keks: keks, cfg: cfg, budget: bud,
		ready:  make([]chan struct{}, len(rows)),
		plain:  make([][]byte, len(rows)),
		errs:   make([]error, len(rows)),
		failed: make(chan struct{}),
		wake:   make(chan struct{}, 1),
		left:   make([]int, len(reads)),
	}
	for k := range reads {
		f.left[k] = len(reads[k].segs)
	}
	for i := range rows {
		f.ready[i] = make(chan struct{})
	}
	f.wg.Add(1)
	go f.schedule()
	return f, nil
}

// stop cancels the reads still running, waits for them, and gives back
// to the instance's budget the lease and what else the request held.
func (f *fetcher) stop() fetchStats {
	f.cancel()
	f.wg.Wait()
	f.mu.Lock()
	f.budget.give(f.pooled + f.docPooled + f.lease)
	f.held, f.pooled, f.docPooled, f.docLeased, f.lease, f.free = 0, 0, 0, 0, 0, 0
	f.mu.Unlock()
	return f.stats
}

// release gives back n bytes of read k (negative n takes more), to the
// lease or the budget, whichever it was charged to. f.mu is held.
func (f *fetcher) release(k int, n int64) {
	f.held -= n
	if f.leased[k] {
		f.free += n
		return
	}
	f.pooled -= n
	f.budget.give(n)
}

// next returns the decoded bytes of segment i, which stay valid until the
// next call. The writer calls it for i = 0, 1, ... in order. It fails as
// soon as any read has failed: the response cannot complete, so there is
// no point in writing more of it.
func (f *fetcher) next(i int) ([]byte, error) {
	k := f.owner[i] // want is i already: the previous call left it there
	select {
	case <-f.ready[i]:
	case <-f.failed:
		return nil, f.failErr
	case <-f.ctx.Done():
		return nil, f.ctx.Err()
	}
	if err := f.errs[i]; err != nil {
		return nil, err
	}
	pt := f.plain[i]
	f.plain[i] = nil
	doc, err := f.decode(&f.rows[i], pt)
	f.mu.Lock()
	f.release(k, int64(cap(pt)))
	// The previous segment is written by now.
	f.free += f.docLeased
	f.budget.give(f.docPooled)
	f.docLeased, f.docPooled = 0, 0
	if err == nil {
		n := int64(cap(doc))
		f.docLeased = min(n, max(f.free, 0))
		f.free -= f.docLeased
		if f.docPooled = n - f.docLeased; f.docPooled > 0 {

			f.budget.force(f.docPooled)
		}
	}
	f.want = i + 1
	if f.left[k]--; f.left[k] == 0 {
		f.unread--
	}
	f.mu.Unlock()
	f.poke()
	return doc, err
}

func (f *fetcher) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// schedule starts the reads in order as the window allows.
func (f *fetcher) schedule() {
	defer f.wg.Done()
	for k := range f.reads {
		if !f.admit(k) {
			return
		}
		f.wg.Add(1)
		go f.fetch(k)
	}
}

// admit waits until read k may start and accounts for it; false when the
// request is over.
func (f *fetcher) admit(k int) bool {
	r := &f.reads[k]
	for {
		f.mu.Lock()
		ok := false
		if f.inflight < f.cfg.ReadParallelism {
			switch {
			case r.first <= f.want && r.length <= f.free:
				// The writer waits for it: the lease carries it.
				f.free -= r.length
				f.leased[k], ok = true, true
			case r.first <= f.want:
				// Only when the lease was capped at the instance's
				// budget: waiting for others could deadlock.
				f.budget.force(r.length)
				f.pooled += r.length
				f.stats.Forced++
				ok = true
			case f.unread < f.cfg.MaxReadsAhead && f.held+r.length <= f.cfg.WindowBytes && f.budget.take(r.length):
				f.pooled += r.length
				ok = true
			}
		}
		if ok {
			f.inflight++
			f.unread++
			f.held += r.length
			f.stats.Reads++
			f.stats.BytesRead += r.length
			f.stats.PeakHeld = max(f.stats.PeakHeld, f.held)
			f.mu.Unlock()
			return true
		}
		f.mu.Unlock()
		// Other requests free the instance's budget without a poke, so
		// look again after a while even when nothing here has changed.
		t := time.NewTimer(budgetPoll)
		select {
		case <-f.wake:
		case <-t.C:
		case <-f.ctx.Done():
			t.Stop()
			return false
		}
		t.Stop()
	}
}

// budgetPoll is how often a request waiting for the instance's budget
// looks again.
const budgetPoll = 5 * time.Millisecond

// fetch streams read k and decrypts each segment as its bytes arrive, so
// the writer can take the first segments of a large read while the rest
// is on its way. A segment's share of the read's charge (the gap before it
// and its sealed bytes) becomes its decrypted bytes.
func (f *fetcher) fetch(k int) {
	defer f.wg.Done()
	r := &f.reads[k]
	rc, err := f.blobs.OpenRange(f.ctx, r.blob, r.off, r.length)
	if err == nil {
		defer rc.Close()
	}
	pos := r.off // how far the stream has been read
	var failure error
	for _, i := range r.segs {
		row := &f.rows[i]
		start := pos
		var pt []byte
		switch {
		case failure != nil:
			// The response fails anyway; spare the work (and a wait on a
			// KMS that is down, for every segment).
		case err != nil:
			failure = fmt.Errorf("segment %s: %w", row.ID, err)
		default:
			var ct []byte
			if ct, failure = readSegment(rc, &pos, r, row); failure == nil {
				pt, failure = f.open(row, ct)
			}
		}
		f.mu.Lock()
		f.plain[i], f.errs[i] = pt, failure
		f.release(k, pos-start-int64(cap(pt)))
		f.mu.Unlock()
		close(f.ready[i])
	}
	f.mu.Lock()
	f.inflight--
	f.release(k, r.off+r.length-pos) // what was not read: a failure
	f.mu.Unlock()
	if failure != nil {
		f.fail(failure)
	}
	f.poke()
}

// readSegment reads row's sealed bytes from rc, which is at *pos in the
// blob of read r, skipping the gap before them.
func readSegment(rc io.Reader, pos *int64, r *read, row *store.Segment) ([]byte, error) {
	short := func(err error) error {
		if errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, blob.ErrUnavailable) {
			err = fmt.Errorf("%w: %w", blob.ErrUnavailable, err)
		}
		return fmt.Errorf("segment %s: read %s [%d,+%d): %w", row.ID, r.blob, r.off, r.length, err)
	}
	if gap := row.ByteStart - *pos; gap > 0 {
		if _, err := io.CopyN(io.Discard, rc, gap); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, short(err)
		}
		*pos = row.ByteStart
	}
	ct := make([]byte, sealedBytes(row))
	if _, err := io.ReadFull(rc, ct); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, short(err)
	}
	*pos = row.ByteStop
	return ct, nil
}

func (f *fetcher) fail(err error) {
	f.failOnce.Do(func() {
		f.failErr = err
		close(f.failed)
	})
}

// open decrypts one segment, in place, with its DEK from the database row
// and its KEK from the cache.
func (f *fetcher) open(row *store.Segment, ciphertext []byte) ([]byte, error) {
	kek, err := f.keks.Get(f.ctx, row.KEKID)
	if errors.Is(err, store.ErrNotFound) {
		// A segment row names a KEK the database does not hold: a broken
		// invariant, not a missing replay.
		return nil, fmt.Errorf("segment %s: kek %s missing: %v", row.ID, row.KEKID, err)
	}
	if err != nil {
		return nil, fmt.Errorf("segment %s: %w", row.ID, err)
	}
	pt, err := crypt.OpenInPlace(kek, row.ID.AAD(), ciphertext, row.WrappedDEK)
	if err != nil {
		return nil, fmt.Errorf("open segment %s: %w", row.ID, err)
	}
	return pt, nil
}

// decode decompresses one decrypted segment, into the storage of the
// segment decoded before it when that has room (the writer is done with
// it). f.mu is not held; only the writer calls it.
func (f *fetcher) decode(row *store.Segment, pt []byte) ([]byte, error) {
	doc, err := segment.DecodeStored(row.Encoding, pt, f.scratch, f.cfg.MaxDecompressed)
	if err != nil {
		return nil, fmt.Errorf("decode segment %s: %w", row.ID, err)
	}
	if int64(cap(doc)) > f.docMax && cap(doc)-len(doc) > len(doc)/8+decodeSlack {
		// A decoder's guess of the size (zlib states none) left much
		// room unused, more than the lease has for it: keep only what
		// the segment needs, as it is held until written and counted by
		// capacity.
		doc = bytes.Clone(doc)
	}
	if row.Encoding != segment.Plain {
		f.scratch = doc[:0]
	}
	return doc, nil
}

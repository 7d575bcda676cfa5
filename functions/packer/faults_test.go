package packer

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/crypt"
	"github.com/replayvault/replayvault/shared/telemetry"
	"github.com/replayvault/replayvault/shared/testenv"
	"github.com/replayvault/replayvault/shared/workload"
)

// guard bounds a test that would otherwise hang on a regression; it is not
// a timing assertion.
func guard(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestKMSHangAtRotation: KMS stops answering when the KEK is due for
// rotation (here: always due). Pack goes on storing every segment under the
// KEK it holds, and only one rotation attempt is ever in flight.
func TestKMSHangAtRotation(t *testing.T) {
	d := testenv.NewDeps(t)
	keys := crypt.NewKeyring(d.Wrapper, func(ctx context.Context, k *crypt.KEK) error {
		return d.DB.InsertKEK(ctx, k.ID, k.KMSKey, k.Wrapped)
	}, time.Millisecond)
	p := New(testConfig(), d.DB, d.Blobs, keys, noReject{t})
	t.Cleanup(p.Close)
	ctx := guard(t)
	rng := rand.New(rand.NewPCG(21, 22))
	replay := uuid.New()
	if res, err := p.Ingest(ctx, message(1, replay, 0, workload.Segment(rng, 0, 1_700_000_000_000, 2000))); err != nil || res != Stored {
		t.Fatalf("first segment: %v, %v", res, err)
	}
	d.KMS.Hang(true)
	t.Cleanup(func() { d.KMS.Hang(false) })
	before := d.KMS.EncryptCalls()

	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 1; i <= n; i++ {
		payload := workload.Segment(rng, i, 1_700_000_000_000+int64(i), 2000)
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := p.Ingest(ctx, message(1, replay, i, payload))
			if err == nil && res != Stored {
				err = errors.New(res.String())
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("segment with KMS hung: %v", err)
		}
	}
	if got := count(t, d, `SELECT count(*) FROM segments`); got != n+1 {
		t.Errorf("segments stored = %d, want %d", got, n+1)
	}
	if got := count(t, d, `SELECT count(DISTINCT kek_id) FROM segments`); got != 1 {
		t.Errorf("segments sealed under %d KEKs, want the one held before KMS hung", got)
	}
	if got := d.KMS.EncryptCalls() - before; got > 1 {
		t.Errorf("KMS encrypt calls while hung = %d, want at most 1 (one attempt in flight)", got)
	}
	d.KMS.Hang(false) // reading back unwraps the KEK
	keks := d.KEKCache()
	for _, x := range rows(t, d) {
		if _, err := open(ctx, d, keks, x); err != nil {
			t.Errorf("segment %d: %v", x.segID, err)
		}
	}
}

// blockingReject is a reject topic whose publish does not return until
// released: a Pub/Sub that stopped answering.
type blockingReject struct {
	release chan struct{}
	mu      sync.Mutex
	waiting int
}

func (r *blockingReject) Reject(ctx context.Context, _ map[string]string, _ []byte, _ string) error {
	r.mu.Lock()
	r.waiting++
	r.mu.Unlock()
	select {
	case <-r.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *blockingReject) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.waiting
}

// TestRejectPublishHoldsNoCPUSlot: more invalid messages than there are
// CPU slots wait on a reject topic that does not answer; valid segments
// still get validated, stored and acked meanwhile.
func TestRejectPublishHoldsNoCPUSlot(t *testing.T) {
	d := testenv.NewDeps(t)
	rej := &blockingReject{release: make(chan struct{})}
	p := newPacker(t, d, testConfig(), rej)
	ctx := guard(t)
	bad := 2*runtime.GOMAXPROCS(0) + 1
	rejected := make(chan error, bad)
	for i := range bad {
		go func() {
			res, err := p.Ingest(ctx, message(1, uuid.New(), i, []byte(`{"not":"an array"}`)))
			if err == nil && res != Rejected {
				err = errors.New(res.String())
			}
			rejected <- err
		}()
	}
	for rej.count() < bad {
		if ctx.Err() != nil {
			t.Fatalf("only %d of %d rejects reached the topic", rej.count(), bad)
		}
		time.Sleep(10 * time.Millisecond)
	}
	rng := rand.New(rand.NewPCG(23, 24))
	if res, err := p.Ingest(ctx, message(1, uuid.New(), 0, workload.Segment(rng, 0, 1_700_000_000_000, 2000))); err != nil || res != Stored {
		t.Fatalf("valid segment while rejects hang: %v, %v", res, err)
	}
	close(rej.release)
	for range bad {
		if err := <-rejected; err != nil {
			t.Errorf("invalid message: %v", err)
		}
	}
}

// TestBufferBoundsMemory sends many concurrent 1 MiB plain payloads through
// ServeHTTP with a buffer far smaller than their sum. While the admitted
// requests wait for their batch, the live heap stays within the buffer
// bound (plus a fixed allowance), the rest are refused with 429, and after
// redelivery of the refused ones every segment is stored exactly once and
// reads back byte for byte.
func TestBufferBoundsMemory(t *testing.T) {
	d := testenv.NewDeps(t)
	cfg := testConfig()
	cfg.MaxBufferBytes = 32 << 20
	cfg.FlushBytes = 64 << 20
	cfg.FlushSegments = 100_000
	cfg.FlushAge = time.Hour // the test flushes by hand, after measuring
	cfg.Limits.MaxDecompressed = 4 << 20
	p := newPacker(t, d, cfg, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a guard
	defer cancel()
	rng := rand.New(rand.NewPCG(31, 32))
	raw := workload.Segment(rng, 0, 1_700_000_000_000, 1<<20)
	replay := uuid.New()
	const n = 100

	// Warm up what every instance holds whatever its load (zstd encoder
	// state per core, the first KEK, pools) in another project.
	var warm sync.WaitGroup
	warmN := 2 * runtime.GOMAXPROCS(0)
	for i := range warmN {
		warm.Add(1)
		go func() {
			defer warm.Done()
			m := message(2, uuid.New(), i, raw)
			if _, err := p.Ingest(ctx, m); err != nil {
				t.Error(err)
			}
		}()
	}
	for waiting(p) < warmN && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	flushAll(p)
	warm.Wait()
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc

	pending := make([]int, n)
	for i := range pending {
		pending[i] = i
	}
	var peak uint64
	first429 := -1
	for round := 0; len(pending) > 0; round++ {
		if round > 20 {
			t.Fatalf("%d segments still refused after %d rounds", len(pending), round)
		}
		type answer struct {
			seg    int
			status int
		}
		answers := make(chan answer, len(pending))
		for _, i := range pending {
			go func() {
				// The event is built here and not used after the call, as
				// in the HTTP server.
				answers <- answer{i, handle(t, p, pushRequest(t, message(1, replay, i, raw)))}
			}()
		}
		// Wait until every request is either answered or waiting for the
		// batch, then measure what is live.
		var got []answer
		for {
			for len(answers) > 0 {
				got = append(got, <-answers)
			}
			waiting := waiting(p)
			if waiting+len(got) == len(pending) {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("round %d: %d waiting, %d answered of %d", round, waiting, len(got), len(pending))
			}
			time.Sleep(5 * time.Millisecond)
		}
		// Twice: objects in sync.Pools survive the first collection.
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapAlloc-min(base, ms.HeapAlloc))
		flushAll(p)
		for len(got) < len(pending) {
			got = append(got, <-answers)
		}
		var refused []int
		for _, a := range got {
			switch a.status {
			case 0:
			case 429:
				refused = append(refused, a.seg)
			default:
				t.Fatalf("segment %d: status %d", a.seg, a.status)
			}
		}
		if round == 0 {
			first429 = len(refused)
		}
		t.Logf("round %d: %d sent, %d refused", round, len(pending), len(refused))
		pending = refused
	}
	t.Logf("first round: %d of %d refused with 429; peak live heap over baseline %.1f MiB (buffer %d MiB)",
		first429, n, float64(peak)/(1<<20), cfg.MaxBufferBytes>>20)
	if first429 == 0 {
		t.Error("no request was refused: the test did not load the buffer")
	}
	// The allowance covers the CPU slots' work (payload and decompressed
	// copy per core), pools and the test's own goroutines.
	allowance := uint64(16<<20) + uint64(runtime.GOMAXPROCS(0))*uint64(4<<20)
	if limit := uint64(cfg.MaxBufferBytes) + allowance; peak > limit {
		t.Errorf("live heap while requests wait: %.1f MiB over baseline, want at most %.1f MiB",
			float64(peak)/(1<<20), float64(limit)/(1<<20))
	}
	if got := count(t, d, `SELECT count(*) FROM segments WHERE project_id = 1`); got != n {
		t.Errorf("segments stored = %d, want %d (no loss, no duplicates)", got, n)
	}
	keks := d.KEKCache()
	for _, x := range rows(t, d) {
		b, err := open(ctx, d, keks, x)
		if err != nil || !bytes.Equal(b, raw) {
			t.Errorf("segment %d does not read back: %v", x.segID, err)
		}
	}
}

// handle serves one push and returns the HTTP status of a nack, 0 for an
// ack.
func handle(t *testing.T, p *Packer, req *http.Request) int {
	t.Helper()
	if code := serve(p, req); code != http.StatusOK {
		return code
	}
	return 0
}

// waiting is how many requests wait for a batch.
func waiting(p *Packer) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waiting
}

// flushAll starts the flush of every open batch.
func flushAll(p *Packer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, b := range p.open {
		p.startFlushLocked(b, telemetry.TriggerDrain)
	}
}

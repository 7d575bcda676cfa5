package packer

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/crypt"
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

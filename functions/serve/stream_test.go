package serve

import (
	"bufio"
	"context"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/replayvault/replayvault/shared/testenv"
)

// TestWindowBoundsMemory fetches a replay of 2,000 segments through a
// small window with a slow writer: the bytes held (reads in flight plus
// decrypted segments not yet written) never exceed the window plus one
// read, yet reads do run ahead of the writer.
func TestWindowBoundsMemory(t *testing.T) {
	e := newEnv(t, defaults())
	rng := rand.New(rand.NewPCG(31, 32))
	id := uuid.New()
	segs := append(makeSegments(rng, 1, id, "", 2000, 1000), makeSegments(rng, 1, uuid.New(), "", 500, 1000)...)
	pack(t, e.d, 500, segs)
	rows := segmentRows(t, e.d, 1, id)
	cfg := Config{CoalesceGapBytes: 1 << 20, MaxReadBytes: 16 << 10, ReadParallelism: 4, WindowBytes: 64 << 10, MaxReadsAhead: 16}.withDefaults()
	largest := int64(0) // the largest segment as stored
	for _, r := range rows {
		largest = max(largest, sealedBytes(&r))
	}

	// Held bytes are reads in flight (their stored size, counted before
	// they start: at most MaxReadBytes, or one segment alone) and decrypted
	// segments not yet taken; the one segment the writer decodes is
	// outside. Read-ahead stops at the window; the reads the writer waits
	// for start regardless, and where the replay's segments alternate
	// between objects a few such reads may be held at once (leftovers of
	// one while the next is needed), hence twice window and read.
	f, err := newFetcher(context.Background(), cfg, testenv.NewCountingStore(e.d.Blobs, time.Millisecond), e.d.KEKCache(), newBudget(1<<30), rows, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		if _, err := f.next(i); err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			time.Sleep(5 * time.Millisecond) // a slow client
		}
	}
	st := f.stop()
	t.Logf("%d segments, %d reads, %d bytes read, peak held %d bytes (window %d)", len(rows), st.Reads, st.BytesRead, st.PeakHeld, cfg.WindowBytes)
	if limit := 2 * (cfg.WindowBytes + max(cfg.MaxReadBytes, largest)); st.PeakHeld > limit {
		t.Errorf("peak held %d bytes, over twice (window + one read) = %d", st.PeakHeld, limit)
	}
	if st.PeakHeld <= cfg.MaxReadBytes {
		t.Errorf("peak held %d bytes: reads never ran ahead of the writer", st.PeakHeld)
	}
}

// TestClientLeaves: when the client hangs up after the first segment, the
// handler stops reading and returns.
func TestClientLeaves(t *testing.T) {
	e := newEnv(t, defaults())
	id := uuid.New()
	segs := makeSegments(rand.New(rand.NewPCG(33, 34)), 1, id, "", 60, 2000)
	pack(t, e.d, 100, segs)
	store := testenv.NewCountingStore(e.d.Blobs, 20*time.Millisecond)
	s := New(Config{ReadParallelism: 2, WindowBytes: 1}, e.d.DB, store, e.d.KEKCache(), e.srv.verifier)
	var wg sync.WaitGroup
	url := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		defer wg.Done()
		s.ServeHTTP(w, r)
	}))

	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, recordingURL(url, 1, id, "format=ndjson"), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token(t, 1))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	wg.Wait() // the handler returned
	if n := store.Counts().ClassB; n >= int64(len(segs)) {
		t.Errorf("reads = %d after the client left at the first segment; want fewer than %d", n, len(segs))
	}
}

// TestInstanceBudget reads one long replay with many concurrent requests
// through a Server whose instance budget is a few reads: rows come in
// keyset pages much shorter than the replay, and every response is
// complete and exact. The bytes held over all requests never exceed the
// budget, whether the replay's segments lie in order in their objects, in
// the order concurrent deliveries reached the packer, or alternate between
// two objects: requests wait for their lease instead. Everything is given
// back at the end.
func TestInstanceBudget(t *testing.T) {
	for _, tc := range []struct {
		name        string
		alternating bool
	}{
		{"as delivered", false},
		{"alternating objects", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := defaults()
			cfg.MaxReadBytes = 32 << 10
			cfg.WindowBytes = 128 << 10
			cfg.ReadParallelism = 4
			cfg.RowPage = 100
			// Room for one request's lease at least: its rows, a window
			// of segments read but not yet reached, and one read.
			cfg.InstanceBytes = int64(cfg.RowPage)*rowBytes + cfg.WindowBytes + cfg.MaxReadBytes + 64<<10
			e := newEnv(t, cfg)
			rng := rand.New(rand.NewPCG(51, 52))
			id := uuid.New()
			segs := makeSegments(rng, 1, id, "", 1500, 2000)
			if tc.alternating {
				var even, odd []seg
				for i, s := range segs {
					if i%2 == 0 {
						even = append(even, s)
					} else {
						odd = append(odd, s)
					}
				}
				pack(t, e.d, 250, even)
				pack(t, e.d, 250, odd)
			} else {
				pack(t, e.d, 500, segs)
			}
			rows := segmentRows(t, e.d, 1, id)
			want := events(t, segs)

			const readers = 12
			var wg sync.WaitGroup
			for range readers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					body := readAll(t, get(t, recordingURL(e.url, 1, id, ""), token(t, 1)))
					if got := compactEvents(t, body); !slices.Equal(got, want) {
						t.Errorf("response has %d events, want %d (or they differ)", len(got), len(want))
					}
				}()
			}
			wg.Wait()
			held, peak := e.srv.budget.usage()
			over := e.srv.budget.overshoot()
			t.Logf("%d readers of %d segments in %d objects: peak %d bytes held over the instance (budget %d), %d forced past it", readers, len(rows), distinctBlobs(rows), peak, cfg.InstanceBytes, over)
			if held != 0 {
				t.Errorf("%d bytes still held after every request ended", held)
			}
			if peak == 0 {
				t.Error("nothing was counted")
			}
			if peak > cfg.InstanceBytes || over != 0 {
				t.Errorf("peak %d bytes held (%d forced), over the instance budget %d", peak, over, cfg.InstanceBytes)
			}
		})
	}
}

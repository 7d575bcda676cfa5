package serve

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
)

// heapWatch samples the live heap (as marked by the last GC) until stop is
// called, and returns its peak. With SERVE_HEAPPROFILE=path it writes a
// heap profile to path at each new peak (5% over the last), to show where
// the memory is held (go tool pprof -sample_index=inuse_space).
func heapWatch() (stop func() uint64) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > peak.Load() {
				if p := os.Getenv("SERVE_HEAPPROFILE"); p != "" && v > peak.Load()+peak.Load()/20 {
					writeHeapProfile(nil, p) // at the peak so far
				}
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak.Load()
	}
}

// liveHeap returns the live heap after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(sample)
	return sample[0].Value.Uint64()
}

// TestManyTinySegmentsMemory is the adversarial shape of a long replay:
// many tiny segments packed into few objects (a coalesced read of one
// object holds thousands of segments), read by many requests at once
// through a small instance budget. The bytes counted never pass the
// budget, and the live heap the reads add stays within a bound derived from
// the configuration alone — the instance budget plus a fixed cost per
// request for its page of rows — whatever the replay's length and the
// number of readers; every response is exact.
func TestManyTinySegmentsMemory(t *testing.T) {
	const (
		segments = 20_000
		readers  = 40
	)
	cfg := defaults()
	cfg.MaxReadBytes = 1 << 20 // MAX_READ_BYTES's least
	cfg.WindowBytes = 2 * cfg.MaxReadBytes
	cfg.InstanceBytes = 4 << 20
	e := newEnv(t, cfg)
	rng := rand.New(rand.NewPCG(71, 72))
	id := uuid.New()
	segs := makeSegments(rng, 1, id, "", segments, 200)
	packAged(t, e.d, 5000, 5*time.Second, segs)
	rows := segmentRows(t, e.d, 1, id)
	t.Logf("%d segments in %d objects", len(rows), distinctBlobs(rows))
	want := sha256.New()
	wantLen := int64(0)
	for _, s := range segs {
		line := append(compactJSON(t, s.raw), '\n')
		want.Write(line)
		wantLen += int64(len(line))
	}
	wantSum := string(want.Sum(nil))
	rows, segs = nil, nil

	old := debug.SetGCPercent(10) // frequent marks: a fine-grained live heap
	defer debug.SetGCPercent(old)
	base := liveHeap()
	stop := heapWatch()
	var wg sync.WaitGroup
	var exact atomic.Int64
	url := recordingURL(e.url, 1, id, "format=ndjson")
	tok := token(t, 1)
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := get(t, url, tok)
			defer resp.Body.Close()
			h := sha256.New()
			n, err := io.Copy(h, resp.Body)
			switch {
			case err != nil:
				t.Errorf("read after %d bytes: %v", n, err)
			case resp.StatusCode != http.StatusOK:
				t.Errorf("HTTP %d", resp.StatusCode)
			case n != wantLen || string(h.Sum(nil)) != wantSum:
				t.Errorf("a response of %d bytes differs from the %d recorded", n, wantLen)
			default:
				exact.Add(1)
			}
		}()
	}
	wg.Wait()
	top := stop()
	peak := top - min(base, top)
	_, counted := e.srv.budget.usage()
	t.Logf("%d exact reads: peak live heap +%d KiB over %d KiB before; budget counted at most %d KiB (instance budget %d KiB)", exact.Load(), peak>>10, base>>10, counted>>10, cfg.InstanceBytes>>10)

	// What the configuration allows: the instance budget, which the
	// count never passes.
	if over := e.srv.budget.overshoot(); counted > cfg.InstanceBytes || over > 0 {
		t.Errorf("budget counted %d bytes (%d forced), over the instance budget %d", counted, over, cfg.InstanceBytes)
	}
	// The heap also holds what the count leaves out: each request's page
	// of rows while it waits for its lease, and 128 KiB a request for its
	// connection, the buffers of the HTTP server and client, goroutines
	// and the fetcher's state per segment; and garbage a collection has
	// not yet found (a quarter more).
	perRequest := int64(cfg.RowPage)*rowBytes + 128<<10
	if limit := uint64(cfg.InstanceBytes+readers*perRequest) * 5 / 4; peak > limit {
		t.Errorf("peak live heap grew by %d KiB, over the %d KiB the configuration allows", peak>>10, limit>>10)
	}
}

// compactJSON is a segment as an NDJSON line holds it (without the newline).
func compactJSON(t testing.TB, raw []byte) []byte {
	t.Helper()
	raw = trimJSONSpace(raw)
	if !bytes.ContainsAny(raw, "\r\n") {
		return raw
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// writeHeapProfile writes the heap's allocations to path (for a person
// finding where memory goes; the test does not read it).
func writeHeapProfile(_ testing.TB, path string) {
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	_ = pprof.Lookup("heap").WriteTo(f, 0)
}

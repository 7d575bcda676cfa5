package segment

import (
	"bytes"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/replayvault/replayvault/shared/workload"
)

// TestValidateMemory checks that validation holds O(depth) plus fixed
// buffers whatever the payload: hostile shapes that made the old tree
// parser allocate gigabytes cost less than 4 MiB of heap here, counting
// every allocation (TotalAlloc) and the live heap's growth (HeapInuse).
// It runs in a single goroutine, and pooled state is warmed up first, so
// the figures are this validation's own.
func TestValidateMemory(t *testing.T) {
	const bound = 4 << 20
	zeros := func(size int) []byte {
		head, tail := `[{"type":3,"timestamp":1760000000000,"data":[0`, `]}]`
		n := (size - len(head) - len(tail)) / 2
		return []byte(head + strings.Repeat(",0", n) + tail)
	}
	empties := func(size int) []byte {
		return []byte("[" + strings.Repeat("{},", size/3-1) + "{}]")
	}
	deep := []byte(strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000))
	deepObjects := []byte("[" + strings.Repeat(`{"a":`, 100_000) + "1" + strings.Repeat("}", 100_000) + "]")
	// 64 MiB of JSON in a zstd stream with zstd's default-level window of
	// 2 MiB (the decoder must keep a window of history: see Validate).
	var zbuf bytes.Buffer
	zw, err := zstd.NewWriter(&zbuf, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(2<<20), zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	zw.Write([]byte("[{\"type\":2,\"timestamp\":1760000000000,\"data\":\""))
	chunk := bytes.Repeat([]byte("a"), 1<<20)
	for range 63 {
		zw.Write(chunk)
	}
	zw.Write(chunk[:1<<20-len("[{\"type\":2,\"timestamp\":1760000000000,\"data\":\"")-len(`"}]`)])
	zw.Write([]byte(`"}]`))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	zstd64 := zbuf.Bytes()
	gzip64 := bomb(t, Gzip, "[", ' ', 64<<20-2, "]")

	tests := []struct {
		name    string
		payload []byte
		reason  string
		events  int
	}{
		{"8 MiB of zeros in one array", zeros(8 << 20), "", 1},
		{"4 MiB of empty events", empties(4 << 20), "", (4 << 20) / 3},
		{"100,000-deep arrays", deep, ReasonTooDeep, 0},
		{"100,000-deep objects", deepObjects, ReasonTooDeep, 0},
		{"64 MiB from a small zstd stream", zstd64, "", 1},
		{"64 MiB from a small gzip stream", gzip64, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if Detect(tt.payload) != Plain && len(tt.payload) > 300<<10 {
				t.Fatalf("compressed payload is %d bytes; want a small one", len(tt.payload))
			}
			t.Logf("payload: %d bytes (%s)", len(tt.payload), Detect(tt.payload))
			// Warm up the pools with a small payload of the same encoding.
			if _, err := Validate(encode(t, Detect(tt.payload), []byte(`[{}]`)), Limits{}); err != nil {
				t.Fatal(err)
			}
			var info Info
			var err error
			total, inuse := heapGrowth(func() { info, err = Validate(tt.payload, Limits{}) })
			t.Logf("TotalAlloc +%d bytes, HeapInuse %+d bytes", total, inuse)
			if r, _ := Reason(err); r != tt.reason {
				t.Fatalf("reason %q (%v), want %q", r, err, tt.reason)
			}
			if err == nil && info.EventCount != tt.events {
				t.Errorf("EventCount = %d, want %d", info.EventCount, tt.events)
			}
			if total > bound {
				t.Errorf("validation allocated %d bytes, want under %d", total, bound)
			}
			if inuse > bound {
				t.Errorf("live heap grew by %d bytes, want under %d", inuse, bound)
			}
		})
	}
}

// heapGrowth runs f and returns the bytes it allocated and the growth of
// the in-use heap between before and just after it, with no collection in
// between.
func heapGrowth(f func()) (total uint64, inuse int64) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, int64(after.HeapInuse) - int64(before.HeapInuse)
}

// TestDefaultMaxDepth measures the nesting of the recordings this module
// generates (see DefaultMaxDepth for real pages) and checks that the
// default limit is far above it, and that a document exactly at the limit
// passes while one level more is refused.
func TestDefaultMaxDepth(t *testing.T) {
	deepest := 0
	for seed := range uint64(8) {
		raw, _ := recording(1<<20, seed)
		deepest = max(deepest, jsonDepth(raw))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	ws := jsonDepth(workload.Segment(rng, 0, 1760000000000, 64<<10))
	t.Logf("deepest generated recording: %d; workload full snapshot: %d; DefaultMaxDepth %d", deepest, ws, DefaultMaxDepth)
	if 4*max(deepest, ws) > DefaultMaxDepth {
		t.Errorf("DefaultMaxDepth %d is not well above the recordings' depth %d", DefaultMaxDepth, max(deepest, ws))
	}
	nest := func(d int) []byte {
		return []byte("[{\"data\":" + strings.Repeat("[", d-2) + strings.Repeat("]", d-2) + "}]")
	}
	if _, err := Validate(nest(DefaultMaxDepth), Limits{}); err != nil {
		t.Errorf("depth %d: %v", DefaultMaxDepth, err)
	}
	if _, err := Validate(nest(DefaultMaxDepth+1), Limits{}); err == nil {
		t.Errorf("depth %d accepted", DefaultMaxDepth+1)
	} else if r, _ := Reason(err); r != ReasonTooDeep {
		t.Errorf("depth %d: reason %q, want %q", DefaultMaxDepth+1, r, ReasonTooDeep)
	}
}

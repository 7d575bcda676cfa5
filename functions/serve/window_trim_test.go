package serve

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"

	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
)

// TestTrimManyTinyEvents trims an edge segment of 200,000 tiny events (an
// adversarial shape: the cost per event, not per byte, is what grows) and
// checks the result and that trimming allocates a small, fixed amount, not
// memory per event: the events are compacted in the segment's own buffer.
func TestTrimManyTinyEvents(t *testing.T) {
	const n, base = 200_000, int64(1_700_000_000_000)
	var b bytes.Buffer
	b.WriteString(" \n[")
	for i := range n {
		if i > 0 {
			b.WriteString(" ,")
		}
		typ := 3
		if i == 1000 {
			typ = 2 // the snapshot the window starts at
		}
		fmt.Fprintf(&b, `{"type":%d,"timestamp":%d}`, typ, base+int64(i))
	}
	b.WriteString("]\n")
	doc := b.Bytes()
	row := &store.Segment{FirstTS: base, LastTS: base + n - 1}
	tr := &trimmer{w: &windowQuery{from: base + 5000, to: base + 150_000 - 1}, chain: true, findChain: true}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	out, err := tr.trim(0, row, doc)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Errorf("trimming %d events allocated %d bytes; want a fixed amount under 1 MiB", n, alloc)
	}
	var got []int64
	if err := segment.Events(out, func(ev segment.Event) error {
		got = append(got, ev.TS-base)
		return nil
	}); err != nil {
		t.Fatalf("trimmed segment: %v", err)
	}
	if len(got) != 150_000-1000 || got[0] != 1000 || got[len(got)-1] != 150_000-1 {
		t.Errorf("kept %d events from %d to %d; want 149000 from 1000 to 149999", len(got), got[0], got[len(got)-1])
	}
}

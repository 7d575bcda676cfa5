package serve

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/replayvault/replayvault/shared/store"
)

// layout builds rows (in segment order) from (blob, start, stop) triples.
func layout(spans ...any) []store.Segment {
	var rows []store.Segment
	for i := 0; i < len(spans); i += 3 {
		rows = append(rows, store.Segment{BlobPath: spans[i].(string), ByteStart: int64(spans[i+1].(int)), ByteStop: int64(spans[i+2].(int))})
	}
	return rows
}

// planned is a read as the tests compare it.
type planned struct {
	Blob        string
	Off, Length int64
	Segs        []int
}

func summarize(reads []read) []planned {
	var out []planned
	for _, r := range reads {
		out = append(out, planned{r.blob, r.off, r.length, r.segs})
	}
	return out
}

func TestPlan(t *testing.T) {
	wide := planLimits{gap: 100, maxRead: 1 << 20, span: 1 << 20}
	tests := []struct {
		name string
		rows []store.Segment
		lim  planLimits
		want []planned
	}{
		{"empty", nil, wide, nil},
		{"one segment", layout("a", 10, 20), wide, []planned{{"a", 10, 10, []int{0}}}},
		{"adjacent", layout("a", 0, 10, "a", 10, 30), wide, []planned{{"a", 0, 30, []int{0, 1}}}},
		{"small gap merges", layout("a", 0, 10, "a", 109, 120), wide, []planned{{"a", 0, 120, []int{0, 1}}}},
		{"gap of the limit splits", layout("a", 0, 10, "a", 110, 120), wide,
			[]planned{{"a", 0, 10, []int{0}}, {"a", 110, 10, []int{1}}}},
		{"coalescing off", layout("a", 0, 10, "a", 10, 20), planLimits{gap: 0, maxRead: 1 << 20, span: 1 << 20},
			[]planned{{"a", 0, 10, []int{0}}, {"a", 10, 10, []int{1}}}},
		{"blobs apart, interleaved", layout("a", 0, 10, "b", 0, 10, "a", 20, 30, "b", 50, 60), wide,
			[]planned{{"a", 0, 30, []int{0, 2}}, {"b", 0, 60, []int{1, 3}}}},
		{"out of byte order", layout("a", 40, 50, "a", 0, 10, "a", 20, 30), wide,
			[]planned{{"a", 0, 50, []int{1, 2, 0}}}},
		{"read cap", layout("a", 0, 40, "a", 40, 80, "a", 80, 120), planLimits{gap: 100, maxRead: 80, span: 1 << 20},
			[]planned{{"a", 0, 80, []int{0, 1}}, {"a", 80, 40, []int{2}}}},
		{"segment over the cap alone", layout("a", 0, 10, "a", 10, 200, "a", 200, 210), planLimits{gap: 100, maxRead: 50, span: 1 << 20},
			[]planned{{"a", 0, 10, []int{0}}, {"a", 10, 190, []int{1}}, {"a", 200, 10, []int{2}}}},
		{"first read capped", layout("a", 0, 40, "a", 40, 80, "a", 80, 120, "a", 120, 160), planLimits{gap: 100, maxRead: 1000, firstRead: 80, span: 1 << 20},
			[]planned{{"a", 0, 80, []int{0, 1}}, {"a", 80, 80, []int{2, 3}}}},
		{"first segment joining a read late", layout("a", 80, 120, "a", 0, 40, "a", 40, 80), planLimits{gap: 100, maxRead: 1000, firstRead: 40, span: 1 << 20},
			[]planned{{"a", 80, 40, []int{0}}, {"a", 0, 80, []int{1, 2}}}},
		{"span limit keeps a far segment apart", layout("a", 0, 10, "b", 0, 100, "b", 100, 200, "a", 10, 20), planLimits{gap: 100, maxRead: 1 << 20, span: 210},
			[]planned{{"a", 0, 10, []int{0}}, {"b", 0, 200, []int{1, 2}}, {"a", 10, 10, []int{3}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reads, owner := plan(tc.rows, tc.lim)
			if diff := cmp.Diff(tc.want, summarize(reads)); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
			checkPlan(t, tc.rows, tc.lim, reads, owner)
		})
	}
}

// TestPlanInvariants checks random layouts: every segment in exactly one
// read that covers it, within the limits, reads ordered by first segment,
// and a request's lease at least its longest read and a decoded segment.
func TestPlanInvariants(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range 200 {
		rows := randomRows(rng, 1+rng.IntN(300), 1+rng.IntN(6))
		lim := planLimits{gap: int64(rng.IntN(5000)), maxRead: int64(1 + rng.IntN(100_000)), firstRead: int64(rng.IntN(50_000)), span: int64(1 + rng.IntN(200_000))}
		reads, owner := plan(rows, lim)
		checkPlan(t, rows, lim, reads, owner)
		var longest, total, decoded int64
		for _, r := range reads {
			longest = max(longest, r.length)
			total += r.length
		}
		for _, r := range rows {
			decoded = max(decoded, decodedBytes(&r))
		}
		if lease := leaseBytes(rows, reads); lease > total+decoded || lease < longest+decoded {
			t.Errorf("lease %d bytes, want within [%d, %d]", lease, longest+decoded, total+decoded)
		}
		if t.Failed() {
			t.Fatalf("layout %d, limits %+v", i, lim)
		}
	}
}

func checkPlan(t *testing.T, rows []store.Segment, lim planLimits, reads []read, owner []int) {
	t.Helper()
	seen := make([]int, len(rows))
	for k, r := range reads {
		if k > 0 && reads[k-1].first > r.first {
			t.Errorf("read %d (first %d) after read %d (first %d)", k, r.first, k-1, reads[k-1].first)
		}
		capacity := lim.maxRead
		if r.first == 0 && lim.firstRead > 0 {
			capacity = min(capacity, lim.firstRead)
		}
		if len(r.segs) > 1 && r.length > capacity {
			t.Errorf("read %d of %d bytes holds %d segments, over the cap %d", k, r.length, len(r.segs), capacity)
		}
		lo, hi := r.segs[0], r.segs[0]
		for _, i := range r.segs {
			seen[i]++
			lo, hi = min(lo, i), max(hi, i)
			if owner[i] != k {
				t.Errorf("owner[%d] = %d, want %d", i, owner[i], k)
			}
			s := rows[i]
			if s.BlobPath != r.blob || s.ByteStart < r.off || s.ByteStop > r.off+r.length {
				t.Errorf("segment %d %s[%d,%d) not inside read %d %s[%d,+%d)", i, s.BlobPath, s.ByteStart, s.ByteStop, k, r.blob, r.off, r.length)
			}
		}
		if lo != r.first {
			t.Errorf("read %d: first = %d, want %d", k, r.first, lo)
		}
		if len(r.segs) > 1 {
			var span int64
			for i := lo; i <= hi; i++ {
				span += rows[i].ByteStop - rows[i].ByteStart
			}
			if span > lim.span {
				t.Errorf("read %d spans %d bytes of the replay, over %d", k, span, lim.span)
			}
		}
	}
	for i, n := range seen {
		if n != 1 {
			t.Errorf("segment %d is in %d reads", i, n)
		}
	}
}

// randomRows lays out n segments of one replay over blobs, as packing with
// several instances and redeliveries does: mostly in order, some shuffled,
// with other replays' segments in between.
func randomRows(rng *rand.Rand, n, blobs int) []store.Segment {
	rows := make([]store.Segment, n)
	ends := make([]int64, blobs)
	b := 0
	for i := range rows {
		if rng.IntN(4) == 0 { // mostly stay in the previous blob
			b = rng.IntN(blobs)
		}
		ends[b] += int64(rng.IntN(3000)) // other replays' segments
		size := int64(500 + rng.IntN(20_000))
		rows[i] = store.Segment{BlobPath: fmt.Sprintf("blob%d", b), ByteStart: ends[b], ByteStop: ends[b] + size, RawSize: size * int64(1+rng.IntN(8))}
		ends[b] += size
	}
	return rows
}

// BenchmarkPlan plans the reads of a 1,000-segment replay.
func BenchmarkPlan(b *testing.B) {
	for _, blobs := range []int{3, 30} {
		rows := randomRows(rand.New(rand.NewPCG(2, 2)), 1000, blobs)
		lim := planLimits{gap: 1 << 20, maxRead: 16 << 20, firstRead: firstReadBytes, span: 32 << 20}
		b.Run(fmt.Sprintf("rows=1000/blobs=%d", blobs), func(b *testing.B) {
			b.ReportAllocs()
			var reads int
			for b.Loop() {
				r, _ := plan(rows, lim)
				reads = len(r)
			}
			b.ReportMetric(float64(reads), "reads")
		})
	}
}

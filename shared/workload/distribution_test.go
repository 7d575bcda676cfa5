package workload

import (
	"bytes"
	"encoding/json"
	"io"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/gzip"
)

func TestSizeDistSample(t *testing.T) {
	d := DefaultSizes()
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 20000
	sizes := make([]int, n)
	for i := range sizes {
		sizes[i] = d.Sample(rng)
	}
	slices.Sort(sizes)
	median, p99 := sizes[n/2], sizes[n*99/100]
	if median < d.Median*9/10 || median > d.Median*11/10 {
		t.Errorf("median = %d, want %d ± 10%%", median, d.Median)
	}
	if p99 < 5*d.Median {
		t.Errorf("p99 = %d, want a long tail (≥ 5× median %d)", p99, d.Median)
	}
	if sizes[0] < d.Min || sizes[n-1] > d.Max {
		t.Errorf("range [%d, %d] escapes [%d, %d]", sizes[0], sizes[n-1], d.Min, d.Max)
	}
}

func TestParseSizeDist(t *testing.T) {
	tests := []struct {
		in      string
		want    SizeDist
		wantErr bool
	}{
		{"", DefaultSizes(), false},
		{"median=10KB", SizeDist{Median: 10 << 10, Min: 1 << 10, Max: 1 << 20, Sigma: 1}, false},
		{"median=100B,min=64B,max=2MB,sigma=0.5", SizeDist{Median: 100, Min: 64, Max: 2 << 20, Sigma: 0.5}, false},
		{"median=1.5KB", SizeDist{Median: 1536, Min: 1 << 10, Max: 1 << 20, Sigma: 1}, false},
		{"median=2MB", SizeDist{}, true}, // above max
		{"sigma=-1", SizeDist{}, true},
		{"mean=3KB", SizeDist{}, true},
		{"median", SizeDist{}, true},
		{"median=abc", SizeDist{}, true},
	}
	for _, tc := range tests {
		got, err := ParseSizeDist(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("ParseSizeDist(%q) = %+v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseSizeDist(%q): %v", tc.in, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseSizeDist(%q) (-want +got):\n%s", tc.in, diff)
		}
		if back, err := ParseSizeDist(got.String()); err != nil || back != got {
			t.Errorf("ParseSizeDist(%q.String() = %q) = %+v, %v; want the same distribution", tc.in, got.String(), back, err)
		}
	}
}

func TestLengthDist(t *testing.T) {
	l := DefaultLengths()
	rng := rand.New(rand.NewPCG(3, 4))
	const n = 50000
	lens := make([]int, n)
	total := 0
	for i := range lens {
		lens[i] = l.Sample(rng)
		total += lens[i]
	}
	slices.Sort(lens)
	if lens[0] < 1 || lens[n-1] > 2000 {
		t.Errorf("range [%d, %d] escapes [1, 2000]", lens[0], lens[n-1])
	}
	if m := lens[n/2]; m > 5 {
		t.Errorf("median length = %d, want most replays short (≤ 5)", m)
	}
	if lens[n-1] < 1000 {
		t.Errorf("longest of %d replays = %d, want some near 2,000", n, lens[n-1])
	}
	if mean := float64(total) / n; mean < 8 || mean > 25 {
		t.Errorf("mean length = %.1f, want about 14", mean)
	}
}

func TestCompressedSegment(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, target := range []int{2 << 10, 20 << 10, 300 << 10} {
		for _, seg := range []int{0, 7} {
			gz, raw := CompressedSegment(rng, seg, 1_700_000_000_000, target)
			if off := float64(len(gz)) / float64(target); off < 0.85 || off > 1.15 {
				t.Errorf("target %d: got %d bytes compressed (%.2f×)", target, len(gz), off)
			}
			zr, err := gzip.NewReader(bytes.NewReader(gz))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(zr)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, raw) {
				t.Fatalf("target %d: gzip payload does not hold the raw JSON returned", target)
			}
			var events []struct {
				Type int `json:"type"`
			}
			if err := json.Unmarshal(raw, &events); err != nil {
				t.Fatalf("target %d: %v", target, err)
			}
			full := slices.ContainsFunc(events, func(e struct {
				Type int `json:"type"`
			}) bool {
				return e.Type == typeFullSnapshot
			})
			if full != (seg == 0) {
				t.Errorf("segment %d: has full snapshot = %v, want %v", seg, full, seg == 0)
			}
		}
	}
}

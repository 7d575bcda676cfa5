package segment

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// Benchmarks report MB/s of raw JSON, whatever the encoding, so that the
// numbers compare across encodings.

var benchSizes = []struct {
	name string
	size int
}{{"20KB", 20 << 10}, {"1MB", 1 << 20}}

func BenchmarkValidate(b *testing.B) {
	for _, sz := range benchSizes {
		raw, _ := recording(sz.size, 42)
		for _, enc := range encodings {
			payload := encode(b, enc, raw)
			b.Run(fmt.Sprintf("%s/%s", sz.name, enc), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(raw)))
				for b.Loop() {
					if _, err := Validate(payload, Limits{}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, sz := range benchSizes {
		raw, _ := recording(sz.size, 42)
		for _, enc := range []Encoding{Gzip, Zlib, Zstd} {
			data := encode(b, enc, raw)
			b.Run(fmt.Sprintf("%s/%s", sz.name, enc), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(raw)))
				for b.Loop() {
					if _, err := Decode(enc, data, 0); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkCompress(b *testing.B) {
	for _, sz := range benchSizes {
		raw, _ := recording(sz.size, 42)
		b.Run(sz.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				Compress(raw)
			}
		})
	}
}

// BenchmarkValidateParallel measures the shared decoders and pools under
// concurrency, as on a packer instance serving many requests.
func BenchmarkValidateParallel(b *testing.B) {
	raw, _ := recording(20<<10, 42)
	for _, enc := range encodings {
		payload := encode(b, enc, raw)
		b.Run(string(enc), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := Validate(payload, Limits{}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkValidateVsJSONValid measures Validate beside encoding/json.Valid
// on the same bytes in the same run, alternating the two in each
// iteration, and reports Validate's speed as a multiple of json.Valid's
// (x_json_valid) besides both MB/s. The shapes are this package's
// recording (a nested full snapshot, then incremental events) and
// shared/workload's incremental segments.
func BenchmarkValidateVsJSONValid(b *testing.B) {
	rec, _ := recording(1<<20, 42)
	inc := workloadLike(1 << 20)
	for _, tc := range []struct {
		name string
		raw  []byte
	}{{"recording_1MB", rec}, {"incremental_1MB", inc}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(tc.raw)))
			var ours, theirs time.Duration
			for b.Loop() {
				t0 := time.Now()
				if _, err := Validate(tc.raw, Limits{}); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if !json.Valid(tc.raw) {
					b.Fatal("json.Valid refuses the recording")
				}
				ours += t1.Sub(t0)
				theirs += time.Since(t1)
			}
			mb := float64(len(tc.raw)) * float64(b.N) / 1e6
			b.ReportMetric(mb/ours.Seconds(), "validate_MB/s")
			b.ReportMetric(mb/theirs.Seconds(), "json_valid_MB/s")
			b.ReportMetric(theirs.Seconds()/ours.Seconds(), "x_json_valid")
		})
	}
}

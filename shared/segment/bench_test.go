package segment

import (
	"fmt"
	"testing"
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

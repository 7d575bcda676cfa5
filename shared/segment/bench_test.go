package segment

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
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
// (x_json_valid) besides both MB/s. The figures are CPU time of the
// benchmark's thread (see cpuTime), so that other load on the machine
// does not skew the ratio. The shapes are this package's
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
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var ours, theirs cpuTime
			for b.Loop() {
				t0 := threadCPU()
				if _, err := Validate(tc.raw, Limits{}); err != nil {
					b.Fatal(err)
				}
				t1 := threadCPU()
				if !json.Valid(tc.raw) {
					b.Fatal("json.Valid refuses the recording")
				}
				ours.add(t1 - t0)
				theirs.add(threadCPU() - t1)
			}
			mb := float64(len(tc.raw)) / 1e6
			b.ReportMetric(mb/ours.Seconds(), "validate_MB/s")
			b.ReportMetric(mb/theirs.Seconds(), "json_valid_MB/s")
			b.ReportMetric(theirs.Seconds()/ours.Seconds(), "x_json_valid")
		})
	}
}

// BenchmarkScanOverhead measures what scanning adds to decompression for
// compressed payloads: Validate (decompress and scan in one pass) beside
// decompressing the same payload alone through the same 64 KiB buffer,
// alternating in each iteration, and reports scan_overhead, Validate's
// time over decompression's minus one (0.5 is 50% more).
func BenchmarkScanOverhead(b *testing.B) {
	raw, _ := recording(1<<20, 42)
	for _, enc := range []Encoding{Gzip, Zlib, Zstd} {
		payload := encode(b, enc, raw)
		b.Run(string(enc), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var scan, alone cpuTime
			buf := make([]byte, chunkSize)
			for b.Loop() {
				t0 := threadCPU()
				if _, err := Validate(payload, Limits{}); err != nil {
					b.Fatal(err)
				}
				t1 := threadCPU()
				if n := decompressOnly(b, enc, payload, buf); n != len(raw) {
					b.Fatalf("decompressed %d bytes, want %d", n, len(raw))
				}
				scan.add(t1 - t0)
				alone.add(threadCPU() - t1)
			}
			mb := float64(len(raw)) / 1e6
			b.ReportMetric(mb/scan.Seconds(), "validate_MB/s")
			b.ReportMetric(mb/alone.Seconds(), "decompress_MB/s")
			b.ReportMetric(scan.Seconds()/alone.Seconds()-1, "scan_overhead")
		})
	}
}

// decompressOnly streams payload's decompressed bytes through buf as
// Validate does, and returns how many there were.
func decompressOnly(b *testing.B, enc Encoding, payload, buf []byte) int {
	var r io.Reader
	switch enc {
	case Zstd:
		d := zstdStreams.Get().(*zstd.Decoder)
		defer zstdStreams.Put(d)
		if err := d.Reset(bytes.NewReader(payload)); err != nil {
			b.Fatal(err)
		}
		r = d
	default:
		f := inflaters.Get().(*inflater)
		defer f.release()
		var err error
		if r, err = f.open(enc, payload); err != nil {
			b.Fatal(err)
		}
	}
	total := 0
	for {
		n, err := r.Read(buf)
		total += n
		if err == io.EOF {
			return total
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

// cpuTime adds up the CPU time of a benchmark's iterations, as measured by
// threadCPU on a locked thread: on a shared machine wall time also counts
// the time other processes ran.
type cpuTime struct {
	d time.Duration
	n int
}

func (c *cpuTime) add(d time.Duration) { c.d += d; c.n++ }

// Seconds returns the mean CPU seconds per iteration.
func (c *cpuTime) Seconds() float64 { return c.d.Seconds() / float64(c.n) }

// threadCPU returns the CPU time used by the calling OS thread.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		panic(err)
	}
	return time.Duration(ts.Nano())
}

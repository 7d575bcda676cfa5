package segment

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"sync"
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

// benchShapes are the JSON the speed benchmarks run on: this package's
// recording (a nested full snapshot, then incremental events) and
// workloadLike's incremental events, 1 MB each, and storeCorpora's two
// corpora (the bench's payloads, and real-shaped recordings from
// workload.Recording), each validated segment by segment.
var benchShapes = sync.OnceValue(func() []struct {
	name string
	raw  [][]byte
} {
	rec, _ := recording(1<<20, 42)
	shapes := []struct {
		name string
		raw  [][]byte
	}{{"recording_1MB", [][]byte{rec}}, {"incremental_1MB", [][]byte{workloadLike(1 << 20)}}}
	for _, c := range storeCorpora() {
		// About 8 MB of each: enough segments for every shape and size.
		var segs [][]byte
		for total := 0; total < 8<<20 && len(segs) < len(c.raw); {
			segs = append(segs, c.raw[len(segs)])
			total += len(segs[len(segs)-1])
		}
		shapes = append(shapes, struct {
			name string
			raw  [][]byte
		}{c.name + "_corpus", segs})
	}
	return shapes
})

func totalLen(segs [][]byte) (n int) {
	for _, s := range segs {
		n += len(s)
	}
	return n
}

// BenchmarkValidateVsJSONValid measures Validate beside encoding/json.Valid
// on the same bytes in the same run, alternating the two in each
// iteration, and reports Validate's speed as a multiple of json.Valid's
// (x_json_valid) besides both MB/s. The figures are CPU time of the
// benchmark's thread (see cpuTime), so that other load on the machine
// does not skew the ratio. For compressed forms (gzip, zstd) the
// baseline is decompressing the payload (Decode) and then json.Valid.
// allocs/op counts Validate's and the baseline's allocations.
func BenchmarkValidateVsJSONValid(b *testing.B) {
	for _, sh := range benchShapes() {
		for _, enc := range []Encoding{Plain, Gzip, Zstd} {
			payloads := make([][]byte, len(sh.raw))
			for i, raw := range sh.raw {
				payloads[i] = encode(b, enc, raw)
			}
			size := totalLen(sh.raw)
			b.Run(fmt.Sprintf("%s/%s", sh.name, enc), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size))
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				var ours, theirs cpuTime
				for b.Loop() {
					t0 := threadCPU()
					for _, p := range payloads {
						if _, err := Validate(p, Limits{}); err != nil {
							b.Fatal(err)
						}
					}
					t1 := threadCPU()
					for i, p := range payloads {
						raw := p
						if enc != Plain {
							var err error
							if raw, err = Decode(enc, p, 0); err != nil {
								b.Fatal(err)
							}
						}
						if !json.Valid(raw) || len(raw) != len(sh.raw[i]) {
							b.Fatal("json.Valid refuses the segment")
						}
					}
					ours.add(t1 - t0)
					theirs.add(threadCPU() - t1)
				}
				mb := float64(size) / 1e6
				b.ReportMetric(mb/ours.Seconds(), "validate_MB/s")
				b.ReportMetric(mb/theirs.Seconds(), "json_valid_MB/s")
				b.ReportMetric(theirs.Seconds()/ours.Seconds(), "x_json_valid")
			})
		}
	}
}

// BenchmarkValidateAllocs counts Validate's own allocations (plain JSON;
// BenchmarkValidateVsJSONValid's allocs/op include json.Valid's baseline),
// per segment.
func BenchmarkValidateAllocs(b *testing.B) {
	for _, sh := range benchShapes() {
		b.Run(sh.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(totalLen(sh.raw)))
			for b.Loop() {
				for _, p := range sh.raw {
					if _, err := Validate(p, Limits{}); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(len(sh.raw)), "segments/op")
		})
	}
}

// BenchmarkScanOverhead measures what scanning adds to decompression for
// compressed payloads: Validate (decompress and scan in one pass) beside
// decompressing the same payload alone through the same 64 KiB buffer,
// alternating in each iteration, and reports scan_overhead, Validate's
// time over decompression's minus one (0.5 is 50% more).
func BenchmarkScanOverhead(b *testing.B) {
	for _, sh := range benchShapes() {
		for _, enc := range []Encoding{Gzip, Zlib, Zstd} {
			payloads := make([][]byte, len(sh.raw))
			for i, raw := range sh.raw {
				payloads[i] = encode(b, enc, raw)
			}
			size := totalLen(sh.raw)
			b.Run(fmt.Sprintf("%s/%s", sh.name, enc), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size))
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				var scan, alone cpuTime
				buf := make([]byte, chunkSize)
				for b.Loop() {
					t0 := threadCPU()
					for _, p := range payloads {
						if _, err := Validate(p, Limits{}); err != nil {
							b.Fatal(err)
						}
					}
					t1 := threadCPU()
					n := 0
					for _, p := range payloads {
						n += decompressOnly(b, enc, p, buf)
					}
					if n != size {
						b.Fatalf("decompressed %d bytes, want %d", n, size)
					}
					scan.add(t1 - t0)
					alone.add(threadCPU() - t1)
				}
				mb := float64(size) / 1e6
				b.ReportMetric(mb/scan.Seconds(), "validate_MB/s")
				b.ReportMetric(mb/alone.Seconds(), "decompress_MB/s")
				b.ReportMetric(scan.Seconds()/alone.Seconds()-1, "scan_overhead")
			})
		}
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

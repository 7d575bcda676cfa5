package segment

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/replayvault/replayvault/shared/workload"
)

// storeCorpora are the two corpora stored bytes are measured on: the
// bench's (workload.CompressedSegment at the bench's size distribution:
// random text, gzip about 3:1) and a real-shaped recording
// (workload.Recording: repetitive DOM and events, gzip about 10:1, the
// shape of the rrweb 2.2 recordings in issue 16: 61 segments, 6.9 MB).
func storeCorpora() []struct {
	name string
	raw  [][]byte
} {
	rng := rand.New(rand.NewPCG(16, 1))
	sizes := workload.DefaultSizes()
	var bench [][]byte
	for i := range 200 {
		_, raw := workload.CompressedSegment(rng, i, 1_700_000_000_000, sizes.Sample(rng))
		bench = append(bench, raw)
	}
	real := workload.Recording(rand.New(rand.NewPCG(16, 2)), 61, 100<<10, 800<<10, 1_700_000_000_000)
	return []struct {
		name string
		raw  [][]byte
	}{{"bench", bench}, {"real-shaped", real}}
}

var storeLevels = []Level{LevelFastest, LevelDefault, LevelBetter, LevelBest}

// TestTranscodeRoundTrip stores every segment of both corpora, as each
// encoding a client may send, at every level, and reads it back byte for
// byte the way Serve does (Decode of the stored encoding).
func TestTranscodeRoundTrip(t *testing.T) {
	for _, c := range storeCorpora() {
		segs := c.raw[:min(len(c.raw), 40)] // enough for every shape; keeps CI quick
		for i, raw := range segs {
			if _, err := Validate(raw, Limits{}); err != nil {
				t.Fatalf("%s segment %d is not a valid segment: %v", c.name, i, err)
			}
		}
		for _, enc := range encodings {
			for _, level := range storeLevels {
				t.Run(fmt.Sprintf("%s/%s/%s", c.name, enc, level), func(t *testing.T) {
					for i, raw := range segs {
						payload := encode(t, enc, raw)
						stored, got, err := Transcode(enc, payload, level, 0)
						if err != nil {
							t.Fatalf("segment %d: %v", i, err)
						}
						if got != Zstd {
							t.Fatalf("segment %d stored as %s, want zstd", i, got)
						}
						if enc == Zstd && !bytes.Equal(stored, payload) {
							t.Fatalf("segment %d: a zstd payload was re-compressed", i)
						}
						back, err := Decode(got, stored, 0)
						if err != nil {
							t.Fatalf("segment %d: decode stored: %v", i, err)
						}
						if !bytes.Equal(back, raw) {
							t.Fatalf("segment %d: round trip differs (%d bytes back, %d raw)", i, len(back), len(raw))
						}
					}
				})
			}
		}
	}
}

// TestTranscodeSmaller: on real-shaped data the chosen level stores fewer
// bytes than what browsers send (gzip -6), which is the point of
// transcoding.
func TestTranscodeSmaller(t *testing.T) {
	for _, c := range storeCorpora() {
		var gz, better int
		for _, raw := range c.raw {
			payload := encode(t, Gzip, raw)
			stored, _, err := Transcode(Gzip, payload, LevelBetter, 0)
			if err != nil {
				t.Fatal(err)
			}
			gz += len(payload)
			better += len(stored)
		}
		if better >= gz {
			t.Errorf("%s: zstd better stores %d bytes, gzip as sent %d", c.name, better, gz)
		}
	}
}

// TestTranscodeBomb: transcoding decodes under the same bound as
// validation, so a bomb fails instead of growing past the limit.
func TestTranscodeBomb(t *testing.T) {
	const limit = 1 << 20
	for _, enc := range []Encoding{Gzip, Zlib} {
		payload := bomb(t, enc, "[", ' ', 64<<20, "]")
		_, _, err := Transcode(enc, payload, LevelBest, limit)
		var inv *InvalidError
		if !errors.As(err, &inv) || inv.Reason != ReasonDecompressedTooLarge {
			t.Errorf("%s bomb: err = %v, want %s", enc, err, ReasonDecompressedTooLarge)
		}
	}
}

func TestParseLevel(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Level
		ok   bool
	}{
		{"fastest", LevelFastest, true}, {"default", LevelDefault, true},
		{"better", LevelBetter, true}, {"BEST", LevelBest, true},
		{"9", 0, false}, {"", 0, false},
	} {
		got, err := ParseLevel(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// processCPU is the process's CPU time: on a machine shared with other
// work it measures what a segment costs better than wall time does.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkStore measures what Pack pays and stores per segment for each
// choice: "as-sent" keeps the browser's gzip (no work); zstd-LEVEL
// transcodes it (gzip decode plus zstd encode, the CPU Pack adds). One op
// is one segment (the corpus in turn); stored-B/raw-MB is the stored size
// per MB (10^6 bytes) of raw JSON.
//
//	go test -run '^$' -bench BenchmarkStore ./shared/segment/
func BenchmarkStore(b *testing.B) {
	for _, c := range storeCorpora() {
		payloads := make([][]byte, len(c.raw))
		var raw int
		for i, r := range c.raw {
			payloads[i] = encode(b, Gzip, r)
			raw += len(r)
		}
		b.Run(c.name+"/as-sent", func(b *testing.B) {
			var stored int
			for _, p := range payloads {
				stored += len(p)
			}
			for b.Loop() {
			}
			b.ReportMetric(float64(stored)/float64(raw)*1e6, "stored-B/raw-MB")
		})
		for _, level := range storeLevels {
			b.Run(fmt.Sprintf("%s/zstd-%s", c.name, level), func(b *testing.B) {
				b.SetBytes(int64(raw / len(payloads)))
				var stored, n int
				cpu0 := processCPU()
				for i := 0; b.Loop(); i++ {
					out, _, err := Transcode(Gzip, payloads[i%len(payloads)], level, 0)
					if err != nil {
						b.Fatal(err)
					}
					if i < len(payloads) {
						stored += len(out)
						n++
					}
				}
				b.ReportMetric((processCPU()-cpu0).Seconds()*1e3/float64(b.N), "cpu-ms/segment")
				if n == len(payloads) {
					b.ReportMetric(float64(stored)/float64(raw)*1e6, "stored-B/raw-MB")
				}
			})
		}
	}
}

// BenchmarkDecodeStored measures Serve's decode of what was stored, per
// segment, for each choice: the read path's side of the trade.
//
//	go test -run '^$' -bench BenchmarkDecodeStored ./shared/segment/
func BenchmarkDecodeStored(b *testing.B) {
	for _, c := range storeCorpora() {
		var raw int
		for _, r := range c.raw {
			raw += len(r)
		}
		variants := []struct {
			name string
			enc  Encoding
			data [][]byte
		}{{name: "as-sent-gzip", enc: Gzip}}
		for _, level := range storeLevels {
			variants = append(variants, struct {
				name string
				enc  Encoding
				data [][]byte
			}{name: "zstd-" + level.String(), enc: Zstd})
		}
		for i := range variants {
			for _, r := range c.raw {
				if variants[i].enc == Gzip {
					variants[i].data = append(variants[i].data, encode(b, Gzip, r))
				} else {
					variants[i].data = append(variants[i].data, CompressLevel(r, storeLevels[i-1]))
				}
			}
		}
		for _, v := range variants {
			b.Run(c.name+"/"+v.name, func(b *testing.B) {
				b.SetBytes(int64(raw / len(v.data)))
				cpu0 := processCPU()
				for i := 0; b.Loop(); i++ {
					if _, err := Decode(v.enc, v.data[i%len(v.data)], 0); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric((processCPU()-cpu0).Seconds()*1e3/float64(b.N), "cpu-ms/segment")
			})
		}
	}
}

// BenchmarkRewritten compares the encodings Pack may store events an edge
// rule rewrote in (already decoded, so only the compression is Pack's
// work): s2 (what it does), zstd at its fastest and default levels, with
// the client's gzip of the same events for the stored size. Each reports
// CPU µs per segment to compress and to decode (Serve's side), and the
// stored bytes per MB of raw JSON.
//
//	go test -run '^$' -bench BenchmarkRewritten ./shared/segment/
func BenchmarkRewritten(b *testing.B) {
	for _, c := range storeCorpora() {
		var raw, gz int
		for _, r := range c.raw {
			raw += len(r)
			gz += len(encode(b, Gzip, r))
		}
		for _, e := range []struct {
			name string
			enc  Encoding
			do   func([]byte) []byte
		}{
			{"s2", S2, func(r []byte) []byte { out, _ := CompressS2(r); return out }},
			{"zstd-fastest", Zstd, func(r []byte) []byte { return CompressLevel(r, LevelFastest) }},
			{"zstd-default", Zstd, Compress},
		} {
			b.Run(c.name+"/"+e.name, func(b *testing.B) {
				b.SetBytes(int64(raw / len(c.raw)))
				stored := make([][]byte, len(c.raw))
				var size int
				for i, r := range c.raw {
					stored[i] = e.do(r)
					size += len(stored[i])
				}
				cpu0 := processCPU()
				for i := 0; b.Loop(); i++ {
					e.do(c.raw[i%len(c.raw)])
				}
				b.ReportMetric((processCPU()-cpu0).Seconds()*1e6/float64(b.N), "cpu-us/segment")
				var buf []byte
				cpu0 = processCPU()
				for i := range 10 * len(stored) {
					out, err := DecodeStored(e.enc, stored[i%len(stored)], buf, 0)
					if err != nil {
						b.Fatal(err)
					}
					buf = out[:0]
				}
				b.ReportMetric((processCPU()-cpu0).Seconds()*1e6/float64(10*len(stored)), "decode-cpu-us/segment")
				b.ReportMetric(float64(size)/float64(raw)*1e6, "stored-B/raw-MB")
				b.ReportMetric(float64(gz)/float64(raw)*1e6, "gzip-B/raw-MB")
			})
		}
	}
}

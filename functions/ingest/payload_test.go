package ingest

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/workload"
)

// TestCheckPayload: realistic recordings pass in every encoding, however
// long; bombs are refused from their first bytes or a gzip trailer; a
// stream that is broken from the start is refused. Under the test limit
// (1 MiB) most payloads are too large to rule a bomb out by their size, so
// the ratio check runs; under the default limit (64 MiB) a payload under
// 64 KB cannot be a bomb and only its start is decoded.
func TestCheckPayload(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	real := workload.Segment(rng, 0, 1_700_000_000_000, 900<<10)
	small := workload.Segment(rng, 0, 1_700_000_000_000, 20<<10)
	spaces := append(append([]byte("["), bytes.Repeat([]byte(" "), 8<<20)...), ']')
	forged := workload.Gzip(spaces)
	binary.LittleEndian.PutUint32(forged[len(forged)-4:], 100) // a lying trailer
	stated := workload.Gzip(real)
	binary.LittleEndian.PutUint32(stated[len(stated)-4:], 1<<30)
	// Only white space, 40 MB of it from 40 KB: within the default limit,
	// so no bomb, but no array either.
	blank := zlibBytes(bytes.Repeat([]byte(" "), 40<<20))
	// A long gzip header (a 2 KB extra field) puts the deflate data past
	// the first sniffIn bytes.
	named := gzipExtra(small, bytes.Repeat([]byte("x"), 2048))
	smallGz := workload.Gzip(small)
	// Broken after its start: the start decodes, the rest is Pack's.
	brokenLate := bytes.Clone(smallGz)
	for i := len(brokenLate) / 2; i < len(brokenLate)-8; i++ {
		brokenLate[i] = 0xff
	}
	tests := []struct {
		name string
		cfg  Config
		data []byte
		code string
	}{
		{"plain", testConfig(), real, ""},
		{"gzip", testConfig(), workload.Gzip(real), ""},
		{"zlib", testConfig(), zlibBytes(real), ""},
		{"zstd", testConfig(), segment.Compress(real), ""},
		{"small gzip", testConfig(), workload.Gzip([]byte(`[{"type":4}]`)), ""},
		{"plain object", testConfig(), []byte(`{"type":4}`), "not_an_array"},
		{"plain too large", testConfig(), append([]byte("["), bytes.Repeat([]byte(" "), 1<<20)...), "too_large"},
		{"gzip object", testConfig(), workload.Gzip([]byte(`{"type":4}`)), "not_an_array"},
		{"gzip bomb with a lying trailer", testConfig(), forged, "decompressed_too_large"},
		{"gzip trailer over the limit", testConfig(), stated, "decompressed_too_large"},
		{"zlib bomb", testConfig(), zlibBytes(spaces), "decompressed_too_large"},
		{"zstd bomb", testConfig(), segment.Compress(spaces), "decompressed_too_large"},
		{"truncated in its header", testConfig(), workload.Gzip(real)[:12], "bad_compression"},
		{"corrupt zlib", testConfig(), []byte{0x78, 0x9c, 1, 2, 3}, "bad_compression"},
		{"default: small gzip", defaultLimits(), smallGz, ""},
		{"default: small zlib", defaultLimits(), zlibBytes(small), ""},
		{"default: large gzip", defaultLimits(), workload.Gzip(real), ""},
		{"default: gzip object", defaultLimits(), workload.Gzip(bytes.Repeat([]byte(`{"type":4}`), 4000)), "not_an_array"},
		{"default: only white space", defaultLimits(), blank, "not_an_array"},
		{"default: long gzip header", defaultLimits(), named, ""},
		{"default: gzip header past the first prefix", defaultLimits(), gzipExtra(small, bytes.Repeat([]byte("x"), 500)), ""},
		{"default: object past the first prefix", defaultLimits(), gzipExtra([]byte(`{"type":4}`), bytes.Repeat([]byte("x"), 500)), "not_an_array"},
		{"default: broken past its start", defaultLimits(), brokenLate, ""},
		{"default: broken at its start", defaultLimits(), append([]byte{0x78, 0x9c, 0xff, 0xff}, small...), "bad_compression"},
		{"default: bomb over the limit", defaultLimits(), zlibBytes(bytes.Repeat([]byte(" "), 80<<20)), "decompressed_too_large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := New(tc.cfg, nil, nil)
			err := s.checkPayload(tc.data, "segment")
			code := ""
			if e, ok := err.(*Error); ok {
				code = e.Code
			} else if err != nil {
				t.Fatalf("unexpected error type: %v", err)
			}
			if code != tc.code {
				t.Errorf("code %q (%v), want %q", code, err, tc.code)
			}
		})
	}
	// What Ingest lets through broken, Pack refuses.
	if _, err := segment.Validate(brokenLate, segment.Limits{MaxDecompressed: 64 << 20}); err == nil {
		t.Error("Pack's validation took the stream broken past its start")
	}
}

// defaultLimits is testConfig with the default size limits.
func defaultLimits() Config {
	c := testConfig()
	c.MaxBodyBytes, c.MaxDecompressed = 10<<20, 64<<20
	return c
}

func zlibBytes(b []byte) []byte {
	var out bytes.Buffer
	w, _ := zlib.NewWriterLevel(&out, zlib.BestCompression)
	w.Write(b)
	w.Close()
	return out.Bytes()
}

// gzipExtra is b gzip-compressed with an extra field in the header.
func gzipExtra(b, extra []byte) []byte {
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	w.Extra = extra
	w.Write(b)
	w.Close()
	return out.Bytes()
}

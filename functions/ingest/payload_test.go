package ingest

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/workload"
)

// TestCheckPayload: realistic recordings pass in every encoding, however
// long; bombs are refused from their first 64 KiB or a gzip trailer; a
// stream that is broken from the start is refused.
func TestCheckPayload(t *testing.T) {
	s := New(testConfig(), nil, nil)
	rng := rand.New(rand.NewPCG(3, 4))
	real := workload.Segment(rng, 0, 1_700_000_000_000, 900<<10)
	spaces := append(append([]byte("["), bytes.Repeat([]byte(" "), 8<<20)...), ']')
	forged := workload.Gzip(spaces)
	binary.LittleEndian.PutUint32(forged[len(forged)-4:], 100) // a lying trailer
	stated := workload.Gzip(real)
	binary.LittleEndian.PutUint32(stated[len(stated)-4:], 1<<30)
	truncated := workload.Gzip(real)[:200]
	tests := []struct {
		name string
		data []byte
		code string
	}{
		{"plain", real, ""},
		{"gzip", workload.Gzip(real), ""},
		{"zstd", segment.Compress(real), ""},
		{"small gzip", workload.Gzip([]byte(`[{"type":4}]`)), ""},
		{"plain object", []byte(`{"type":4}`), "not_an_array"},
		{"gzip object", workload.Gzip([]byte(`{"type":4}`)), "not_an_array"},
		{"gzip bomb with a lying trailer", forged, "decompressed_too_large"},
		{"gzip trailer over the limit", stated, "decompressed_too_large"},
		{"zstd bomb", segment.Compress(spaces), "decompressed_too_large"},
		{"truncated gzip", truncated, "bad_compression"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
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
}

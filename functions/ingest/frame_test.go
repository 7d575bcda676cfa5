package ingest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/workload"
)

// TestFrame: each way in frames the segment payloads its handler would
// publish; a path of no way in is refused.
func TestFrame(t *testing.T) {
	s := New(testConfig(), nil, nil)
	rec := rrwebEvents(1_700_000_000_000, "x")
	var events []json.RawMessage
	if err := json.Unmarshal(rec, &events); err != nil {
		t.Fatal(err)
	}
	hex := strings.ReplaceAll(uuid.NewString(), "-", "")
	gz := workload.Gzip(rec)
	tests := []struct {
		name, path string
		body       []byte
		want       []byte // the one payload, decoded
		code       string
	}{
		{"sentry", "/api/42/envelope/", envelope(hex, 3, rec, true), rec, ""},
		{"posthog", "/s/", gzipBytes(snapshotBatch("tok", uuid.Must(uuid.NewV7()).String(), "w", events)), rec, ""},
		{"rrweb", "/v1/projects/42/replays/" + uuid.NewString() + "/segments/7", gz, rec, ""},
		{"rrweb bomb", "/v1/projects/42/replays/" + uuid.NewString() + "/segments/7", workload.Gzip(append([]byte("["), bytes.Repeat([]byte(" "), 4<<20)...)), nil, "decompressed_too_large"},
		{"unknown path", "/v1/nope", rec, nil, "not_found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := http.NewRequest(http.MethodPost, "http://ingest"+tc.path, bytes.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Frame(r)
			if code := errCode(t, err); code != tc.code {
				t.Fatalf("code %q (%v), want %q", code, err, tc.code)
			}
			if tc.code != "" {
				return
			}
			if len(got) != 1 {
				t.Fatalf("%d payloads, want 1", len(got))
			}
			raw, err := segment.Decode(segment.Detect(got[0]), got[0], 0)
			if err != nil {
				t.Fatal(err)
			}
			if !jsonEqual(t, string(raw), string(tc.want)) {
				t.Errorf("payload %s, want %s", raw, tc.want)
			}
		})
	}
}

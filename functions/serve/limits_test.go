package serve

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/functions/packer"
	"github.com/replayvault/replayvault/shared/config"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/workload"
)

// TestDecompressedLimitIsShared raises MAX_DECOMPRESSED_BYTES above the
// default and packs a segment that only the raised limit admits: Serve,
// configured from the same environment, must serve it (it used to hard-code
// the default and answer 500). A Serve configured with a lower limit must
// refuse to inflate it, which shows the setting is what governs Serve.
func TestDecompressedLimitIsShared(t *testing.T) {
	const raised = segment.DefaultMaxDecompressed + 4<<20
	for k, v := range map[string]string{
		"DATABASE_URL":           "postgres://x@127.0.0.1/db",
		"BUCKET":                 "b",
		"KMS_KEY":                "projects/p/locations/global/keyRings/r/cryptoKeys/k",
		"GOOGLE_CLOUD_PROJECT":   "p",
		"REJECT_TOPIC":           "rejects",
		"JWT_SECRET":             testSecret,
		"MAX_DECOMPRESSED_BYTES": "71303168", // raised
	} {
		t.Setenv(k, v)
	}
	pc, err := config.LoadPack(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := config.LoadServe(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if pc.MaxDecompressedBytes != raised || sc.MaxDecompressedBytes != raised {
		t.Fatalf("MAX_DECOMPRESSED_BYTES read as %d by Pack and %d by Serve, want %d", pc.MaxDecompressedBytes, sc.MaxDecompressedBytes, raised)
	}

	// One event whose string makes the segment 1 MiB over the default.
	big := segment.DefaultMaxDecompressed + 1<<20
	var raw bytes.Buffer
	raw.WriteString(`[{"type":3,"timestamp":1700000000000,"data":{"s":"`)
	raw.WriteString(strings.Repeat("a", big))
	raw.WriteString(`"}}]`)
	replay := uuid.New()
	s := seg{project: 1, replay: replay, id: 0, raw: raw.Bytes(), payload: workload.Gzip(raw.Bytes())}

	e := newEnv(t, ConfigFrom(sc))
	packLimited(t, e.d, 1, 100*time.Millisecond, packer.ConfigFrom(pc).Limits, []seg{s})

	body := readAll(t, get(t, recordingURL(e.url, 1, replay, ""), token(t, 1)))
	if got, want := len(body), raw.Len()+1; got != want { // plus the final newline
		t.Errorf("served %d bytes, want %d", got, want)
	}

	lower := ConfigFrom(sc)
	lower.MaxDecompressed = segment.DefaultMaxDecompressed
	resp := get(t, recordingURL(e.server(lower, nil, nil, nil), 1, replay, ""), token(t, 1))
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("Serve with a lower limit answered %d, want 500", resp.StatusCode)
	}
}

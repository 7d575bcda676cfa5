package replayvault

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/testenv"
)

// TestShredOverHTTP runs the registered Shred function through
// functions-framework with FUNCTION_TARGET=Shred, configured only through the
// environment as deployed: every REST sub-path reaches it. Before the
// environment is complete it answers 503 and builds again on the next
// request.
func TestShredOverHTTP(t *testing.T) {
	t.Setenv("JWT_SECRET", "too-short")
	rec := httptest.NewRecorder()
	shred(rec, httptest.NewRequest(http.MethodPost, "/v1/sweep", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), `"unavailable"`) {
		t.Fatalf("unconfigured: %d %s, want a 503 JSON error", rec.Code, rec.Body.String())
	}

	d := testenv.NewDeps(t)
	const secret = "root-test-secret-0123456789abcdef"
	for k, v := range map[string]string{
		"DATABASE_URL":          d.DSN,
		"BUCKET":                testenv.TestBucket,
		"STORAGE_EMULATOR_HOST": d.GCS.Host(),
		"JWT_SECRET":            secret,
		"SWEEP_TOKEN":           "local-sweep",
		// Compaction re-encodes by default (COMPACT_ZSTD_LEVEL): Shred
		// builds a KMS client.
		"KMS_KEY":      d.KMS.KeyName(),
		"KMS_ENDPOINT": d.KMS.Endpoint(),
		"LOG_LEVEL":    "warn",
	} {
		t.Setenv(k, v)
	}
	url := startFunction(t, "Shred")
	tok, err := auth.Mint(secret, 5, []string{auth.ScopeDelete, auth.ScopeProjectDelete}, "root-test", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	replay := uuid.New()
	tests := []struct {
		method, path, token, body string
		status                    int
		field                     string // a key of the JSON answer
	}{
		{"DELETE", "/v1/projects/5/replays/" + replay.String(), tok, "", 200, "receipt_id"},
		{"POST", "/v1/projects/5/replays:shred", tok, `{"replay_ids":["` + replay.String() + `"]}`, 200, "receipt_id"},
		{"POST", "/v1/projects/5:shred", tok, "", 200, "receipt_id"},
		{"POST", "/v1/sweep", "local-sweep", "", 200, "segments_expired"},
		{"POST", "/v1/sweep", "", "", 401, "error"},
		{"GET", "/v1/nothing", tok, "", 404, "error"},
	}
	for _, tc := range tests {
		req, err := http.NewRequest(tc.method, url+tc.path, strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != tc.status || body[tc.field] == nil {
			t.Errorf("%s %s: %d %v (%v), want %d with %q", tc.method, tc.path, resp.StatusCode, body, err, tc.status, tc.field)
		}
	}
	var n int
	if err := d.DB.Pool.QueryRow(t.Context(), `SELECT count(*) FROM shred_receipts WHERE requested_by = 'root-test'`).Scan(&n); err != nil || n != 3 {
		t.Errorf("receipts = %d, %v; want 3", n, err)
	}
}

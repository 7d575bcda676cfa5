package shred

import (
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/replayvault/replayvault/functions/packer"
	"github.com/replayvault/replayvault/functions/serve"
	"github.com/replayvault/replayvault/shared/auth"
)

// TestServeAfterShred reads through the real Serve handler: before the shred
// every replay is served; after it the shredded ones answer 410 Gone (with
// the time of the shred) on both the recording and the metadata, while a
// neighbour packed in the same object is still served in full.
func TestServeAfterShred(t *testing.T) {
	e := newEnv(t, testConfig(), 100*time.Millisecond)
	rng := rand.New(rand.NewPCG(13, 14))
	a, b, neighbour := newReplay(rng, 7, 3), newReplay(rng, 7, 2), newReplay(rng, 7, 4)
	e.pack(t, packer.Stored, a, b, neighbour)
	srv := serve.New(serve.Config{}, e.d.DB, e.d.Blobs, e.keks, auth.NewVerifier(testSecret, auth.Policy{}))
	read := token(t, 7, auth.ScopeRead)
	get := func(path string) response {
		t.Helper()
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer "+read)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return response{status: rec.Code, header: rec.Header(), raw: rec.Body.String()}
	}
	for _, r := range []*replay{a, b, neighbour} {
		if res := get("/v1/projects/7/replays/" + r.id.String() + "/recording"); res.status != http.StatusOK {
			t.Fatalf("before the shred: %d %s", res.status, res.raw)
		}
	}

	body := `{"replay_ids":["` + a.id.String() + `","` + b.id.String() + `"]}`
	if res := e.do(t, http.MethodPost, "/v1/projects/7/replays:shred", token(t, 7, auth.ScopeDelete), body); res.status != http.StatusOK {
		t.Fatalf("shred: %d %s", res.status, res.raw)
	}
	for _, r := range []*replay{a, b} {
		for _, path := range []string{"/recording", "/recording?format=ndjson", ""} {
			res := get("/v1/projects/7/replays/" + r.id.String() + path)
			if res.status != http.StatusGone || !strings.Contains(res.raw, "deleted_at") {
				t.Errorf("GET %s%s after the shred: %d %s, want 410 saying when", r.id, path, res.status, res.raw)
			}
		}
	}
	if res := get("/v1/projects/7/replays/" + neighbour.id.String() + "/recording?format=ndjson"); res.status != http.StatusOK {
		t.Errorf("neighbour after the shred: %d %s", res.status, res.raw)
	}
	e.readBack(t, neighbour)
}

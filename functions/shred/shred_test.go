package shred

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/replayvault/replayvault/functions/packer"
	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/testenv"
)

// checkReceipt fails unless res is a 200 receipt for project with the given
// replays and segment count, and returns its id.
func checkReceipt(t *testing.T, res response, project int64, replays []uuid.UUID, whole bool, segments int) string {
	t.Helper()
	if res.status != http.StatusOK {
		t.Fatalf("status %d, body %s", res.status, res.raw)
	}
	if cc := res.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	ids := make([]any, 0, len(replays))
	sorted := slices.Clone(replays)
	slices.SortFunc(sorted, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	for _, id := range sorted {
		ids = append(ids, id.String())
	}
	want := map[string]any{
		"receipt_id":        res.body["receipt_id"],
		"project_id":        float64(project),
		"replay_ids":        ids,
		"whole_project":     whole,
		"segments_shredded": float64(segments),
		"shredded_at":       res.body["shredded_at"],
	}
	if diff := cmp.Diff(want, res.body); diff != "" {
		t.Errorf("receipt (-want +got):\n%s", diff)
	}
	rid, _ := res.body["receipt_id"].(string)
	if _, err := uuid.Parse(rid); err != nil {
		t.Errorf("receipt_id %q: %v", rid, err)
	}
	at, _ := res.body["shredded_at"].(string)
	if ts, err := time.Parse(time.RFC3339Nano, at); err != nil || time.Since(ts) > time.Minute {
		t.Errorf("shredded_at %q: %v", at, err)
	}
	return rid
}

// TestShredReplay packs three replays into one object, shreds one with
// DELETE, and checks that its keys are gone from every table while its
// neighbours still open byte for byte.
func TestShredReplay(t *testing.T) {
	e := newEnv(t, testConfig(), 100*time.Millisecond)
	rng := rand.New(rand.NewPCG(1, 2))
	victim, left, right := newReplay(rng, 7, 4), newReplay(rng, 7, 3), newReplay(rng, 7, 5)
	e.pack(t, packer.Stored, victim, left, right)
	if n := e.count(t, `SELECT count(DISTINCT blob_path) FROM segments`); n != 1 {
		t.Fatalf("segments are in %d objects, want 1 (neighbours share the blob)", n)
	}
	var deks [][]byte
	var path string
	for _, x := range e.segments(t, 7, victim.id) {
		deks = append(deks, x.dek)
		path = x.path
	}

	res := e.do(t, http.MethodDelete, "/v1/projects/7/replays/"+victim.id.String(), token(t, 7, auth.ScopeDelete), "")
	first := checkReceipt(t, res, 7, []uuid.UUID{victim.id}, false, 4)

	if n := e.count(t, `SELECT count(*) FROM segments WHERE replay_id = $1`, victim.id); n != 0 {
		t.Errorf("segment rows of the shredded replay = %d, want 0", n)
	}
	if found := e.keyMaterialFound(t, deks); len(found) > 0 {
		t.Errorf("wrapped DEKs of the shredded replay still in %v", found)
	}
	// The KEKs stay: they are shared by every segment packed in the same
	// hour, and a KEK opens nothing by itself. It only unwraps DEKs, and the
	// shredded segments' wrapped DEKs no longer exist anywhere, so their
	// ciphertext (still in the object below) is AES-256-GCM under a random
	// key nobody holds.
	if n := e.count(t, `SELECT count(*) FROM keks`); n == 0 {
		t.Error("keks table is empty; the neighbours need their KEK")
	}
	if _, err := e.d.GCS.Object(testenv.TestBucket, path); err != nil {
		t.Errorf("shared object %s: %v (a shred must not delete the neighbours' bytes)", path, err)
	}
	if n := e.count(t, `SELECT count(*) FROM replays WHERE replay_id = $1 AND deleted_at IS NOT NULL AND segment_count = 0`, victim.id); n != 1 {
		t.Errorf("tombstone rows = %d, want 1", n)
	}
	e.readBack(t, left)
	e.readBack(t, right)

	// Idempotent: a repeat is a new receipt that shredded nothing.
	res = e.do(t, http.MethodDelete, "/v1/projects/7/replays/"+victim.id.String(), token(t, 7, auth.ScopeDelete), "")
	if again := checkReceipt(t, res, 7, []uuid.UUID{victim.id}, false, 0); again == first {
		t.Errorf("repeat returned the same receipt id %s", again)
	}
	// A redelivered segment of the shredded replay is acked and dropped.
	e.pack(t, packer.Shredded, victim)
	if n := e.count(t, `SELECT count(*) FROM segments WHERE replay_id = $1`, victim.id); n != 0 {
		t.Errorf("redelivery stored %d segments of a shredded replay", n)
	}
	if n := e.count(t, `SELECT count(*) FROM shred_receipts WHERE requested_by = 'tester@example.test'`); n != 2 {
		t.Errorf("receipt rows naming the token subject = %d, want 2", n)
	}
}

// TestShredReplaysBatch shreds a list with a duplicate and an id never
// seen: the duplicate collapses and the unknown id is tombstoned, so a late
// segment cannot create it.
func TestShredReplaysBatch(t *testing.T) {
	e := newEnv(t, testConfig(), 100*time.Millisecond)
	rng := rand.New(rand.NewPCG(3, 4))
	a, b, keep := newReplay(rng, 7, 2), newReplay(rng, 7, 3), newReplay(rng, 7, 2)
	e.pack(t, packer.Stored, a, b, keep)
	unknown := newReplay(rng, 7, 2)

	body := fmt.Sprintf(`{"replay_ids": [%q, %q, %q, %q]}`, a.id, unknown.id, b.id, a.id)
	res := e.do(t, http.MethodPost, "/v1/projects/7/replays:shred", token(t, 7, auth.ScopeDelete), body)
	checkReceipt(t, res, 7, []uuid.UUID{a.id, b.id, unknown.id}, false, 5)

	if n := e.count(t, `SELECT count(*) FROM segments WHERE replay_id = ANY($1)`, []uuid.UUID{a.id, b.id}); n != 0 {
		t.Errorf("segments left = %d", n)
	}
	e.pack(t, packer.Shredded, unknown)
	if n := e.count(t, `SELECT count(*) FROM segments WHERE replay_id = $1`, unknown.id); n != 0 {
		t.Errorf("late segments of the pre-shredded id stored: %d", n)
	}
	e.readBack(t, keep)
}

// TestShredProject shreds a project whose replays share objects with
// another project's: every replay of the first goes, none of the second.
func TestShredProject(t *testing.T) {
	e := newEnv(t, testConfig(), 100*time.Millisecond)
	rng := rand.New(rand.NewPCG(5, 6))
	var doomed []*replay
	for range 4 {
		doomed = append(doomed, newReplay(rng, 7, 3))
	}
	other := []*replay{newReplay(rng, 8, 3), newReplay(rng, 8, 2)}
	e.pack(t, packer.Stored, append(slices.Clone(doomed), other...)...)
	later := newReplay(rng, 7, 2) // a second batch for project 7
	e.pack(t, packer.Stored, later)
	doomed = append(doomed, later)
	var deks [][]byte
	for _, r := range doomed {
		for _, x := range e.segments(t, 7, r.id) {
			deks = append(deks, x.dek)
		}
	}

	res := e.do(t, http.MethodPost, "/v1/projects/7:shred", token(t, 7, auth.ScopeDelete), "")
	checkReceipt(t, res, 7, nil, true, 14)

	if n := e.count(t, `SELECT count(*) FROM segments WHERE project_id = 7`); n != 0 {
		t.Errorf("segments left in project 7 = %d", n)
	}
	if found := e.keyMaterialFound(t, deks); len(found) > 0 {
		t.Errorf("wrapped DEKs of project 7 still in %v", found)
	}
	if n := e.count(t, `SELECT count(*) FROM replays WHERE project_id = 7 AND deleted_at IS NULL`); n != 0 {
		t.Errorf("replays of project 7 without a tombstone = %d", n)
	}
	if n := e.count(t, `SELECT count(*) FROM replays WHERE project_id = 8 AND deleted_at IS NOT NULL`); n != 0 {
		t.Errorf("replays of project 8 tombstoned = %d", n)
	}
	for _, r := range other {
		e.readBack(t, r)
	}
	// New replays of the shredded project are dropped; the other project
	// goes on.
	e.pack(t, packer.Shredded, newReplay(rng, 7, 2))
	e.pack(t, packer.Stored, newReplay(rng, 8, 1))
	if n := e.count(t, `SELECT count(*) FROM segments WHERE project_id = 7`); n != 0 {
		t.Errorf("segments stored for a shredded project: %d", n)
	}
	// Repeat: a new receipt, nothing left to shred. A body of {} is fine.
	res = e.do(t, http.MethodPost, "/v1/projects/7:shred", token(t, 7, auth.ScopeDelete), "{}")
	checkReceipt(t, res, 7, nil, true, 0)
}

// TestBadInput: every malformed or unauthorized request is a 4xx JSON error
// that says what is wrong, and nothing is deleted.
func TestBadInput(t *testing.T) {
	e := newEnv(t, testConfig(), 100*time.Millisecond)
	rng := rand.New(rand.NewPCG(7, 8))
	r := newReplay(rng, 7, 3)
	e.pack(t, packer.Stored, r)
	id := r.id.String()

	del := token(t, 7, auth.ScopeDelete)
	expired, err := auth.Mint(testSecret, 7, []string{auth.ScopeDelete}, "tester", -time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := auth.Mint("another-secret-0123456789abcdef0123", 7, []string{auth.ScopeDelete}, "tester", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(n int) string {
		var b strings.Builder
		b.WriteString(`{"replay_ids":[`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%q", uuid.New())
		}
		b.WriteString("]}")
		return b.String()
	}
	const batch = "/v1/projects/7/replays:shred"
	tests := []struct {
		name, method, path, token, body string
		status                          int
		msg                             string // the message contains this
	}{
		{"malformed replay id", "DELETE", "/v1/projects/7/replays/not-a-uuid", del, "", 400, `"not-a-uuid"`},
		{"nil replay id", "DELETE", "/v1/projects/7/replays/00000000-0000-0000-0000-000000000000", del, "", 400, "must be a UUID"},
		{"malformed project id", "DELETE", "/v1/projects/seven/replays/" + id, del, "", 400, `"seven"`},
		{"negative project id", "POST", "/v1/projects/-7:shred", del, "", 400, "positive integer"},
		{"malformed id in list", "POST", batch, del, fmt.Sprintf(`{"replay_ids":[%q,"nope"]}`, id), 400, `replay_ids[1] "nope"`},
		{"number in list", "POST", batch, del, `{"replay_ids":[7]}`, 400, "replay_ids"},
		{"over 1000 ids", "POST", batch, del, ids(1001), 400, "1001 entries; at most 1000"},
		{"empty body", "POST", batch, del, "", 400, "body is empty"},
		{"empty list", "POST", batch, del, `{"replay_ids":[]}`, 400, "replay_ids is empty"},
		{"no list", "POST", batch, del, `{}`, 400, "replay_ids is required"},
		{"null list", "POST", batch, del, `{"replay_ids":null}`, 400, "replay_ids is required"},
		{"unknown field", "POST", batch, del, fmt.Sprintf(`{"replay_ids":[%q],"force":true}`, id), 400, `unknown field "force"`},
		{"not JSON", "POST", batch, del, `replay_ids=` + id, 400, "request body"},
		{"trailing data", "POST", batch, del, fmt.Sprintf(`{"replay_ids":[%q]} {}`, id), 400, "after the JSON object"},
		{"body over 1 MiB", "POST", batch, del, `{"replay_ids":["` + strings.Repeat("a", 1<<20) + `"]}`, 413, "exceeds 1048576 bytes"},
		{"ids sent to the project route", "POST", "/v1/projects/7:shred", del, fmt.Sprintf(`{"replay_ids":[%q]}`, id), 400, "whole project"},
		{"no token", "DELETE", "/v1/projects/7/replays/" + id, "", "", 401, "missing bearer token"},
		{"no token, malformed project", "DELETE", "/v1/projects/x/replays/" + id, "", "", 401, "missing bearer token"},
		{"expired token", "DELETE", "/v1/projects/7/replays/" + id, expired, "", 401, "token expired"},
		{"forged token", "POST", "/v1/projects/7:shred", forged, "", 401, "invalid token"},
		{"read scope only", "DELETE", "/v1/projects/7/replays/" + id, token(t, 7, auth.ScopeRead), "", 403, "lacks scope replay:delete"},
		{"read scope, batch", "POST", batch, token(t, 7, auth.ScopeRead), fmt.Sprintf(`{"replay_ids":[%q]}`, id), 403, "lacks scope"},
		{"other project", "DELETE", "/v1/projects/7/replays/" + id, token(t, 8, auth.ScopeDelete), "", 403, "another project"},
		{"other project, whole project", "POST", "/v1/projects/7:shred", token(t, 8, auth.ScopeDelete), "", 403, "another project"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := e.do(t, tc.method, tc.path, tc.token, tc.body)
			if res.status != tc.status {
				t.Errorf("status %d, want %d; body %s", res.status, tc.status, res.raw)
			}
			if ct := res.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if res.errCode() == "" || !strings.Contains(res.errMessage(), tc.msg) {
				t.Errorf("error %q / %q, want a message containing %q", res.errCode(), res.errMessage(), tc.msg)
			}
		})
	}
	if n := e.count(t, `SELECT count(*) FROM segments`); n != 3 {
		t.Errorf("segments = %d, want all 3 still there", n)
	}
	if n := e.count(t, `SELECT count(*) FROM shred_receipts`); n != 0 {
		t.Errorf("receipts = %d, want 0", n)
	}
	if n := e.count(t, `SELECT count(*) FROM replays WHERE deleted_at IS NOT NULL`) +
		e.count(t, `SELECT count(*) FROM projects WHERE deleted_at IS NOT NULL`); n != 0 {
		t.Errorf("tombstones = %d, want 0", n)
	}
	e.readBack(t, r)
}

// TestRoutes: each route answers only its method; unknown paths are JSON
// 404s; browsers on the allowed origin get their preflight.
func TestRoutes(t *testing.T) {
	e := newEnv(t, testConfig(), 100*time.Millisecond)
	id := uuid.NewString()
	del := token(t, 7, auth.ScopeDelete)
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/v1/projects/7/replays/" + id, 405, "DELETE"},
		{"POST", "/v1/projects/7/replays/" + id, 405, "DELETE"},
		{"GET", "/v1/projects/7/replays:shred", 405, "POST"},
		{"DELETE", "/v1/projects/7:shred", 405, "POST"},
		{"GET", "/v1/sweep", 405, "POST"},
		{"POST", "/v1/projects/7:purge", 404, ""},
		{"POST", "/v1/projects/7", 404, ""},
		{"GET", "/v1/projects/7/replays/" + id + "/recording", 404, ""},
		{"POST", "/Shred", 404, ""},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			res := e.do(t, tc.method, tc.path, del, "")
			if res.status != tc.status || res.errCode() == "" {
				t.Errorf("status %d, body %s; want %d with a JSON error", res.status, res.raw, tc.status)
			}
			if got := res.header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow %q, want %q", got, tc.allow)
			}
		})
	}

	req := func(origin string) *http.Request {
		r, _ := http.NewRequest(http.MethodOptions, "/v1/projects/7/replays/"+id, nil)
		r.Header.Set("Origin", origin)
		r.Header.Set("Access-Control-Request-Method", "DELETE")
		return r
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req("https://app.example.test"))
	if rec.Code != http.StatusNoContent || !strings.Contains(rec.Header().Get("Access-Control-Allow-Methods"), "DELETE") {
		t.Errorf("preflight from allowed origin: %d %v", rec.Code, rec.Header())
	}
	rec = httptest.NewRecorder()
	e.h.ServeHTTP(rec, req("https://evil.example.test"))
	if rec.Code != http.StatusForbidden || rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin: %d %v", rec.Code, rec.Header())
	}
}

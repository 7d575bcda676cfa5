package shred

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/replayvault/replayvault/functions/packer"
	"github.com/replayvault/replayvault/shared/auth"
	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/testenv"
)

// TestSweep builds one of each case and runs the sweep over HTTP:
//
//	live:    an old object holding a live segment and a shredded one: kept
//	shred:   an old object whose only replay was shredded: deleted
//	expired: an old object whose segments all expired: rows and object deleted
//	young:   a young object whose replay was shredded: kept (grace)
//	orphans: old ones deleted, young ones kept, non-blob names never touched,
//	         and ones older than the lookback left to the lifecycle rule
//	         unless the whole bucket is listed.
func TestSweep(t *testing.T) {
	cfg := testConfig()
	cfg.SweepBatch = 2 // several batches per pass
	e := newEnv(t, cfg, 50*time.Millisecond)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(11, 12))
	del := token(t, 7, auth.ScopeDelete)

	live, gone := newReplay(rng, 7, 2), newReplay(rng, 7, 1)
	e.pack(t, packer.Stored, live, gone)
	shredded := newReplay(rng, 7, 2)
	e.pack(t, packer.Stored, shredded)
	expired := newReplay(rng, 7, 5)
	e.pack(t, packer.Stored, expired)
	young := newReplay(rng, 7, 1)
	e.pack(t, packer.Stored, young)
	blobOf := func(r *replay) string { return e.segments(t, 7, r.id)[0].path }
	livePath, shreddedPath, expiredPath, youngPath := blobOf(live), blobOf(shredded), blobOf(expired), blobOf(young)
	if len(map[string]bool{livePath: true, shreddedPath: true, expiredPath: true, youngPath: true}) != 4 {
		t.Fatal("the four cases did not land in four objects")
	}
	for _, r := range []*replay{gone, shredded, young} {
		if res := e.do(t, http.MethodDelete, "/v1/projects/7/replays/"+r.id.String(), del, ""); res.status != 200 {
			t.Fatalf("shred: %d %s", res.status, res.raw)
		}
	}
	if _, err := e.d.DB.Pool.Exec(ctx, `UPDATE segments SET expires_at = now() - interval '1 minute' WHERE replay_id = $1`, expired.id); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.DB.Pool.Exec(ctx, `UPDATE blobs SET created_at = now() - interval '2 hours' WHERE path <> $1`, youngPath); err != nil {
		t.Fatal(err)
	}

	now := time.Now().UTC()
	day := func(t time.Time) string { return t.Format("2006/01/02") }
	orphan := func(name string, created time.Time) string {
		e.d.GCS.Server().CreateObject(fakestorage.Object{
			ObjectAttrs: fakestorage.ObjectAttrs{BucketName: testenv.TestBucket, Name: name, Created: created},
			Content:     []byte("sealed bytes whose keys were never committed"),
		})
		return name
	}
	orphan(fmt.Sprintf("r90/%s/old-orphan", day(now)), now.Add(-2*time.Hour))
	youngOrphan := orphan(fmt.Sprintf("r90/%s/young-orphan", day(now)), now.Add(-time.Minute))
	foreign := orphan("exports/not-a-blob.csv", now.Add(-48*time.Hour))
	ancient := orphan(fmt.Sprintf("r30/%s/ancient-orphan", day(now.AddDate(0, 0, -10))), now.AddDate(0, 0, -10))

	// Only the sweep token opens /v1/sweep.
	for _, tok := range []string{"", "wrong", del} {
		if res := e.do(t, http.MethodPost, "/v1/sweep", tok, ""); res.status != http.StatusUnauthorized {
			t.Errorf("sweep with token %q: %d %s, want 401", tok, res.status, res.raw)
		}
	}

	res := e.do(t, http.MethodPost, "/v1/sweep", sweepToken, "")
	if res.status != http.StatusOK {
		t.Fatalf("sweep: %d %s", res.status, res.raw)
	}
	want := map[string]any{
		"segments_expired": 5.0, "blobs_deleted": 2.0, "orphans_deleted": 1.0,
		"complete": true, "duration_ms": res.body["duration_ms"],
		"project_shreds_resumed": 0.0, "project_shreds_completed": 0.0,
	}
	if diff := cmp.Diff(want, res.body); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{livePath, youngPath, youngOrphan, foreign, ancient}, objects(t, e),
		cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("objects left (-want +got):\n%s", diff)
	}
	var rows []string
	r, err := e.d.DB.Pool.Query(ctx, `SELECT path FROM blobs`)
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var p string
		if err := r.Scan(&p); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, p)
	}
	if diff := cmp.Diff([]string{livePath, youngPath}, rows, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("blob rows left (-want +got):\n%s", diff)
	}
	if n := e.count(t, `SELECT count(*) FROM segments WHERE replay_id = $1`, expired.id); n != 0 {
		t.Errorf("expired segment rows left = %d", n)
	}
	e.readBack(t, live)

	// Nothing left to do.
	res = e.do(t, http.MethodPost, "/v1/sweep", sweepToken, "")
	if res.status != 200 || res.body["segments_expired"] != 0.0 || res.body["blobs_deleted"] != 0.0 || res.body["orphans_deleted"] != 0.0 {
		t.Errorf("second sweep: %d %s, want nothing done", res.status, res.raw)
	}

	// Listing the whole bucket finds the ancient orphan too, and still
	// leaves the foreign object alone.
	full := cfg
	full.OrphanLookback = 0
	rep, err := New(full, e.d.DB, e.d.Blobs, nil).Sweep(ctx)
	if err != nil || rep.OrphansDeleted != 1 || !rep.Complete {
		t.Errorf("full sweep: %+v, %v; want the ancient orphan deleted", rep, err)
	}
	if objs := objects(t, e); slices.Contains(objs, ancient) || !slices.Contains(objs, foreign) {
		t.Errorf("after full sweep: %v", objs)
	}
}

// TestSweepWithoutToken: with no SWEEP_TOKEN the endpoint relies on Cloud
// Run IAM and takes the scheduler's request as it comes (its Authorization
// header holds Google's OIDC token, which Cloud Run has checked).
func TestSweepWithoutToken(t *testing.T) {
	cfg := testConfig()
	cfg.SweepToken = ""
	e := newEnv(t, cfg, 50*time.Millisecond)
	if res := e.do(t, http.MethodPost, "/v1/sweep", "eyJhbGciOiJSUzI1NiJ9.google-oidc.sig", ""); res.status != http.StatusOK {
		t.Errorf("sweep: %d %s", res.status, res.raw)
	}
}

// TestSweepBudget: a spent budget stops the sweep and says it is not done.
func TestSweepBudget(t *testing.T) {
	cfg := testConfig()
	cfg.SweepBudget = -time.Second
	e := newEnv(t, cfg, 50*time.Millisecond)
	rep, err := e.svc.Sweep(context.Background())
	if err != nil || rep.Complete {
		t.Errorf("sweep: %+v, %v; want incomplete", rep, err)
	}
}

func objects(t *testing.T, e *env) []string {
	t.Helper()
	var names []string
	if err := e.d.Blobs.List(context.Background(), "", func(o blob.Object) error {
		names = append(names, o.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return names
}

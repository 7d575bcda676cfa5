package chaos

import (
	"context"
	"math/rand/v2"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/api/option"

	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/testenv"
	"github.com/replayvault/replayvault/shared/workload"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// TestPGWatchFiresAtFlushCommit: the watcher sees a flush's COMMIT the
// first time (Parse of INSERT INTO blobs) and later (the cached statement
// only bound), never another transaction's; a hook that fires drops the
// answer, and the commit has happened all the same.
func TestPGWatchFiresAtFlushCommit(t *testing.T) {
	ctx := t.Context()
	dsn := testenv.NewDB(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	w, err := startPGWatch(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	u.Host = w.addr()
	db, err := store.OpenURL(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	kek := uuid.New()
	var sent, answered atomic.Int64
	w.hooks(func() bool { sent.Add(1); return false }, func() bool { answered.Add(1); return false })
	if err := db.InsertKEK(ctx, kek, "k", []byte{1}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ShredReplays(ctx, 1, []uuid.UUID{uuid.New()}, "test"); err != nil { // a transaction, not a flush
		t.Fatal(err)
	}
	commit := func(seg int) error {
		path := "r90/2026/01/01/" + uuid.NewString()
		_, err := db.CommitBatch(ctx, store.Blob{Path: path, RetentionDays: 90, Size: 10, SegmentCount: 1}, []store.Segment{{
			ID: segment.ID{ProjectID: 1, ReplayID: kek, SegmentID: seg, Type: segment.DefaultType}, BlobPath: path,
			ByteStart: 0, ByteStop: 10, Encoding: segment.Plain, KEKID: kek, WrappedDEK: []byte{1},
			RetentionDays: 90, CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour),
		}})
		return err
	}
	for seg := range 3 {
		if err := commit(seg); err != nil {
			t.Fatal(err)
		}
	}
	if sent.Load() != 3 || answered.Load() != 3 {
		t.Fatalf("hooks fired %d (sent) and %d (answer) times for 3 flushes and 1 other transaction", sent.Load(), answered.Load())
	}
	w.hooks(nil, func() bool { return true })
	if err := commit(3); err == nil {
		t.Fatal("the commit whose answer was dropped reported success")
	}
	w.hooks(nil, nil)
	existing, err := db.ExistingSegments(ctx, []segment.ID{{ProjectID: 1, ReplayID: kek, SegmentID: 3, Type: segment.DefaultType}})
	if err != nil || len(existing) != 1 {
		t.Fatalf("the commit with the dropped answer did not happen: %v, %v", existing, err)
	}
}

// TestUploadGate: a before hook keeps the upload from storage; an after
// hook lets storage keep it but the uploader never hears so.
func TestUploadGate(t *testing.T) {
	ctx := t.Context()
	const bucket = "gate"
	gcs := testenv.NewGCS(t, bucket)
	proxy, err := newFaultProxy(gcs.URL())
	if err != nil {
		t.Fatal(err)
	}
	g := &uploadGate{next: proxy}
	hs := httptest.NewServer(g)
	defer hs.Close()
	c, err := blob.NewGCSClient(ctx, option.WithEndpoint(hs.URL+"/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	store := blob.NewGCS(c, bucket, time.Second)
	always := func() bool { return true }
	for _, tc := range []struct {
		name          string
		before, after func() bool
		stored        bool
	}{
		{"before", always, nil, false},
		{"after", nil, always, true},
		{"none", nil, nil, true},
	} {
		g.set(tc.before, tc.after)
		err := store.Create(ctx, tc.name, []byte("data"))
		if (err == nil) != (tc.before == nil && tc.after == nil) {
			t.Errorf("%s: Create = %v", tc.name, err)
		}
		_, gerr := gcs.Object(bucket, tc.name)
		if (gerr == nil) != tc.stored {
			t.Errorf("%s: object stored = %v, want %v", tc.name, gerr == nil, tc.stored)
		}
	}
}

// TestCheckFindsBreakage: the invariant is not vacuous. An acked segment
// without a row is lost, a row of a segment never acked is half visible,
// and an object without a blob row is an orphan the sweep deletes.
func TestCheckFindsBreakage(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "chaos-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	sd := &standins{dir: dir}
	if sd.pg, err = testenv.StartPostgres(ctx, dir+"/pg"); err != nil {
		t.Fatal(err)
	}
	defer sd.pg.Stop()
	sd.gcs = testenv.NewGCS(t, "unused")
	sd.kms = testenv.NewKMS(t)
	e, err := newEnv(ctx, sd, "check_test")
	if err != nil {
		t.Fatal(err)
	}
	defer e.close()
	e.grace = 100 * time.Millisecond
	sw := e.startSweeper(ctx)
	p := e.packer(e.faulty, e.keyring(time.Hour))
	o := Options{Replays: 2, SegmentsPerReplay: 3}
	replays := e.publish(ctx, p, 1, o, 1, &Report{})
	p.Close()
	// An orphan, made after the background sweeps stop.
	sw.stop()
	sw = e.startSweeper(ctx)
	if err := e.clean.Create(ctx, "r90/2026/01/01/"+uuid.NewString(), []byte("orphan")); err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := e.finish(ctx, sw, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.OrphansSwept < 1 || rep.OrphansLeft != 0 {
		t.Errorf("orphans swept %d, left %d; want ≥ 1 and 0", rep.OrphansSwept, rep.OrphansLeft)
	}

	// Lost: acked, never stored. Half visible: stored, not acked.
	lost := segment.ID{ProjectID: 1, ReplayID: replays[0], SegmentID: 3, Type: segment.DefaultType}
	e.acked[lost] = workload.Segment(rand.New(rand.NewPCG(1, 1)), 3, 1, 100)
	half := segment.ID{ProjectID: 1, ReplayID: replays[1], SegmentID: 2, Type: segment.DefaultType}
	delete(e.acked, half)
	e.unacked[half] = true
	if err := e.check(ctx, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Lost != 1 || rep.HalfVisible != 1 || rep.Duplicated != 0 || rep.Readable != 5 {
		t.Errorf("lost %d, half visible %d, duplicated %d, readable %d; want 1, 1, 0, 5", rep.Lost, rep.HalfVisible, rep.Duplicated, rep.Readable)
	}
	if !strings.HasPrefix(e.bucket, "rv-check-test") {
		t.Errorf("bucket %q", e.bucket)
	}
}

package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
)

// TestProjectShredInBatches shreds a project of 60,000 segment rows in
// batches of 2,000: the tombstone is in force from the first call (reads
// see it, late segments are dropped) although rows remain; a call stopped
// early leaves an unfinished receipt that the next call and then
// ResumeProjectShreds carry on, to exactly the project's rows; and while the
// shred runs, batches that mix another project's segments with late ones of
// the shredded project keep committing.
func TestProjectShredInBatches(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	victims := seed(t, db, 1, 300, 200) // 60,000 rows
	others := seed(t, db, 2, 10, 5)
	lim := store.ShredLimits{Batch: 2000, MaxBatches: 3}

	rc, err := db.ShredProjectLimited(ctx, 1, "gdpr-tool", lim)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Complete || rc.SegmentsShredded != 6000 {
		t.Fatalf("first call: %+v, want incomplete with 6,000 segments", rc)
	}
	// The tombstone is in force though rows remain.
	meta, err := db.ReplayMeta(ctx, 1, victims[299])
	if err != nil {
		t.Fatal(err)
	}
	if _, gone := meta.Shredded(); !gone {
		t.Error("a replay of the shredded project still reads as live")
	}

	kek := uuid.New()
	if err := db.InsertKEK(ctx, kek, "k", []byte{1}); err != nil {
		t.Fatal(err)
	}
	mixed := func(n int) ([]store.Outcome, error) {
		now := time.Now()
		path := "r90/mixed/" + uuid.NewString()
		seg := func(project int64, replay uuid.UUID, id int) store.Segment {
			return store.Segment{
				ID:       segment.ID{ProjectID: project, ReplayID: replay, SegmentID: id, Type: "recording"},
				BlobPath: path, ByteStart: int64(id) * 10, ByteStop: int64(id)*10 + 10,
				Encoding: segment.Zstd, RawSize: 10, EventCount: 1, KEKID: kek, WrappedDEK: []byte{1},
				RetentionDays: 90, CreatedAt: now, ExpiresAt: now.Add(time.Hour),
			}
		}
		return db.CommitBatch(ctx, store.Blob{Path: path, RetentionDays: 90, Size: 20, SegmentCount: 2},
			[]store.Segment{seg(1, victims[0], 1000+n), seg(2, others[0], 1000+n)})
	}

	// The rest, while batches mixing both projects commit.
	var wg sync.WaitGroup
	wg.Add(1)
	var second store.Receipt
	var secondErr error
	go func() {
		defer wg.Done()
		second, secondErr = db.ShredProjectLimited(ctx, 1, "gdpr-tool", store.ShredLimits{Batch: 2000, MaxBatches: 10})
	}()
	for i := range 20 {
		out, err := mixed(i)
		if err != nil {
			t.Fatalf("mixed batch %d during the shred: %v", i, err)
		}
		if out[0] != store.Shredded || out[1] != store.Stored {
			t.Errorf("mixed batch %d: outcomes %v, want [shredded stored]", i, out)
		}
	}
	wg.Wait()
	if secondErr != nil {
		t.Fatal(secondErr)
	}
	if second.ID != rc.ID || second.Complete || second.SegmentsShredded != 26000 {
		t.Errorf("second call: %+v, want the same receipt, incomplete, 26,000 segments", second)
	}

	// The sweep's pass finishes it.
	resumed, err := db.ResumeProjectShreds(ctx, store.ShredLimits{Batch: 2000})
	if err != nil {
		t.Fatal(err)
	}
	if len(resumed) != 1 || resumed[0].ID != rc.ID || !resumed[0].Complete || resumed[0].SegmentsShredded != 60000 {
		t.Fatalf("resume: %+v, want the receipt complete with 60,000 segments", resumed)
	}
	if n := count(t, db, `SELECT count(*) FROM segments WHERE project_id = 1`); n != 0 {
		t.Errorf("segments left in project 1 = %d", n)
	}
	if n := count(t, db, `SELECT count(*) FROM replays WHERE project_id = 1 AND deleted_at IS NULL`); n != 0 {
		t.Errorf("live replays left in project 1 = %d", n)
	}
	if n := count(t, db, `SELECT count(*) FROM segments WHERE project_id = 2`); n != 50+20 {
		t.Errorf("segments of project 2 = %d, want 70", n)
	}
	if n := count(t, db, `SELECT count(*) FROM shred_receipts WHERE completed_at IS NULL`); n != 0 {
		t.Errorf("unfinished receipts = %d", n)
	}
	if again, err := db.ResumeProjectShreds(ctx, store.ShredLimits{}); err != nil || len(again) != 0 {
		t.Errorf("nothing left to resume: %v, %v", again, err)
	}
	// A new call after completion opens a new, empty receipt.
	if rc3, err := db.ShredProject(ctx, 1, "gdpr-tool"); err != nil || rc3.ID == rc.ID || !rc3.Complete || rc3.SegmentsShredded != 0 {
		t.Errorf("repeat: %+v, %v", rc3, err)
	}
}

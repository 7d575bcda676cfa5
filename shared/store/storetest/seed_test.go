package storetest

import (
	"os"
	"testing"

	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// TestSeedProject: the seeded rows are the project's, every replay has its
// segments, and a whole-project shred removes them all.
func TestSeedProject(t *testing.T) {
	ctx := t.Context()
	db, err := store.OpenURL(ctx, testenv.NewDB(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := SeedProject(ctx, db, 5, 150, 7) // two chunks
	if err != nil {
		t.Fatal(err)
	}
	if n, err := ProjectSegments(ctx, db, 5); err != nil || n != 150*7 {
		t.Fatalf("ProjectSegments = %d, %v; want %d", n, err, 150*7)
	}
	_, rows, err := db.ReplaySegments(ctx, 5, s.Replays[149], "recording", 0, 1<<30)
	if err != nil || len(rows) != 7 || rows[6].BlobPath != s.BlobPath {
		t.Fatalf("last replay: %d rows, %v", len(rows), err)
	}
	if n, err := ProjectSegments(ctx, db, 6); err != nil || n != 0 {
		t.Fatalf("another project has %d rows, %v", n, err)
	}
	rc, err := db.ShredProjectLimited(ctx, 5, "test", store.ShredLimits{Batch: 400})
	if err != nil || !rc.Complete || rc.SegmentsShredded != 150*7 {
		t.Fatalf("shred: %+v, %v", rc, err)
	}
	if n, err := ProjectSegments(ctx, db, 5); err != nil || n != 0 {
		t.Fatalf("after the shred %d rows, %v", n, err)
	}
}

package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestExpireSegmentsInBatches(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	ids := seed(t, db, 1, 3, 5)
	if _, err := db.Pool.Exec(ctx, `UPDATE segments SET expires_at = now() - interval '1 minute'
		WHERE replay_id = ANY($1)`, ids[:2]); err != nil {
		t.Fatal(err)
	}
	var got []int64
	for {
		n, err := db.ExpireSegments(ctx, time.Now(), 4)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, n)
		if n < 4 {
			break
		}
	}
	if diff := cmp.Diff([]int64{4, 4, 2}, got); diff != "" {
		t.Errorf("batches (-want +got):\n%s", diff)
	}
	if n := count(t, db, `SELECT count(*) FROM segments`); n != 5 {
		t.Errorf("segments left = %d, want the 5 unexpired", n)
	}
}

func TestDeleteEmptyBlobs(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	live := seed(t, db, 1, 1, 2)
	shredded := seed(t, db, 1, 1, 2)
	young := seed(t, db, 1, 1, 2)
	for _, ids := range [][]any{{shredded[0]}, {young[0]}} {
		if _, err := db.Pool.Exec(ctx, `DELETE FROM segments WHERE replay_id = $1`, ids...); err != nil {
			t.Fatal(err)
		}
	}
	// Age every blob row except young's.
	if _, err := db.Pool.Exec(ctx, `UPDATE blobs SET created_at = now() - interval '2 hours'
		WHERE path NOT IN (SELECT blob_path FROM segments WHERE replay_id = $1)
		AND path <> (SELECT path FROM blobs ORDER BY created_at DESC LIMIT 1)`, young[0]); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, `SELECT count(*) FROM blobs WHERE created_at < now() - interval '1 hour'`); n != 2 {
		t.Fatalf("old blob rows = %d, want 2 (live and shredded)", n)
	}
	paths, err := db.DeleteEmptyBlobs(ctx, time.Now().Add(-time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 1 {
		t.Fatalf("deleted %v, want only the shredded replay's blob", paths)
	}
	if n := count(t, db, `SELECT count(*) FROM blobs`); n != 2 {
		t.Errorf("blob rows left = %d, want 2 (live one, young one)", n)
	}
	if n := count(t, db, `SELECT count(*) FROM segments WHERE replay_id = $1`, live[0]); n != 2 {
		t.Errorf("live segments = %d, want 2", n)
	}
	again, err := db.DeleteEmptyBlobs(ctx, time.Now().Add(-time.Hour), 10)
	if err != nil || len(again) != 0 {
		t.Errorf("second pass: %v, %v; want nothing", again, err)
	}

	missing, err := db.MissingBlobs(ctx, append([]string{"r90/never/committed", paths[0]}, "r30/also/missing"))
	if err != nil {
		t.Fatal(err)
	}
	var existing string
	if err := db.Pool.QueryRow(ctx, `SELECT path FROM blobs LIMIT 1`).Scan(&existing); err != nil {
		t.Fatal(err)
	}
	missing2, err := db.MissingBlobs(ctx, []string{existing})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"r30/also/missing", "r90/never/committed", paths[0]}, missing); diff != "" {
		t.Errorf("missing (-want +got):\n%s", diff)
	}
	if len(missing2) != 0 {
		t.Errorf("an existing blob row reported missing: %v", missing2)
	}
}

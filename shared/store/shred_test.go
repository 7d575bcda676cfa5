package store_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/testenv"
)

func newDB(t testing.TB) *store.DB {
	t.Helper()
	db, err := store.OpenURL(context.Background(), testenv.NewDB(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

// seed writes replays of project with perReplay segments each straight into
// the tables (no packer, no GCS: fast setup), spread over a few blob rows,
// and returns the replay ids.
func seed(t testing.TB, db *store.DB, project int64, replays, perReplay int) []uuid.UUID {
	t.Helper()
	ctx := context.Background()
	ids := make([]uuid.UUID, replays)
	for i := range ids {
		ids[i] = uuid.New()
	}
	blob := "r90/seed/" + uuid.NewString()
	if _, err := db.Pool.Exec(ctx, `
		INSERT INTO keks (id, kms_key, wrapped) VALUES ('00000000-0000-0000-0000-00000000000a', 'k', '\x00')
		ON CONFLICT DO NOTHING`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `
		INSERT INTO blobs (path, retention_days, size, segment_count) VALUES ($1, 90, $2, $3)`,
		blob, replays*perReplay*100, replays*perReplay); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `
		INSERT INTO replays (project_id, replay_id, retention_days, first_seen, last_seen, segment_count)
		SELECT $1, id, 90, now(), now(), $3 FROM unnest($2::uuid[]) AS id`, project, ids, perReplay); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `
		INSERT INTO segments (project_id, replay_id, type, segment_id, blob_path, byte_start, byte_stop,
			encoding, raw_size, event_count, first_ts, last_ts, has_full_snapshot, kek_id, wrapped_dek, expires_at)
		SELECT $1, r.id, 'recording', s, $2, (r.ord * $4 + s) * 100, (r.ord * $4 + s) * 100 + 100,
			'zstd', 1000, 10, 0, 0, s = 0, '00000000-0000-0000-0000-00000000000a',
			sha256(gen_random_uuid()::text::bytea) || sha256(gen_random_uuid()::text::bytea),
			now() + interval '90 days'
		FROM unnest($3::uuid[]) WITH ORDINALITY AS r(id, ord), generate_series(0, $4 - 1) AS s`,
		project, blob, ids, perReplay); err != nil {
		t.Fatal(err)
	}
	return ids
}

func count(t testing.TB, db *store.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.Pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func sortIDs(ids []uuid.UUID) []uuid.UUID {
	ids = slices.Clone(ids)
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	return ids
}

func TestShredReplays(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	ids := seed(t, db, 1, 3, 4)
	other := seed(t, db, 2, 1, 4) // same replay set shape, another project
	unknown := uuid.New()

	rc, err := db.ShredReplays(ctx, 1, []uuid.UUID{ids[1], unknown, ids[0], ids[1]}, "alice")
	if err != nil {
		t.Fatal(err)
	}
	want := store.Receipt{
		ID: rc.ID, ProjectID: 1, ReplayIDs: sortIDs([]uuid.UUID{ids[0], ids[1], unknown}),
		SegmentsShredded: 8, RequestedBy: "alice", ShreddedAt: rc.ShreddedAt, Complete: true,
	}
	if diff := cmp.Diff(want, rc); diff != "" {
		t.Errorf("receipt (-want +got):\n%s", diff)
	}
	if time.Since(rc.ShreddedAt) > time.Minute || rc.ID == uuid.Nil {
		t.Errorf("receipt id %s, time %s", rc.ID, rc.ShreddedAt)
	}
	if n := count(t, db, `SELECT count(*) FROM segments WHERE project_id = 1 AND replay_id = ANY($1)`, ids[:2]); n != 0 {
		t.Errorf("segments left of shredded replays = %d", n)
	}
	if n := count(t, db, `SELECT count(*) FROM segments WHERE replay_id = $1`, ids[2]); n != 4 {
		t.Errorf("segments of the untouched replay = %d, want 4", n)
	}
	if n := count(t, db, `SELECT count(*) FROM segments WHERE project_id = 2 AND replay_id = $1`, other[0]); n != 4 {
		t.Errorf("segments of the other project = %d, want 4", n)
	}
	if n := count(t, db, `SELECT count(*) FROM replays WHERE project_id = 1 AND deleted_at IS NOT NULL
		AND segment_count = 0 AND replay_id = ANY($1)`, []uuid.UUID{ids[0], ids[1], unknown}); n != 3 {
		t.Errorf("tombstones = %d, want 3 (two known replays and the unknown id)", n)
	}
	var first time.Time
	if err := db.Pool.QueryRow(ctx, `SELECT deleted_at FROM replays WHERE replay_id = $1`, ids[0]).Scan(&first); err != nil {
		t.Fatal(err)
	}

	// A repeat is a new receipt with nothing shredded; the tombstone keeps
	// the time of the first shred.
	again, err := db.ShredReplays(ctx, 1, []uuid.UUID{ids[0]}, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if again.SegmentsShredded != 0 || again.ID == rc.ID {
		t.Errorf("repeat: %+v, want a new receipt with 0 segments", again)
	}
	var still time.Time
	if err := db.Pool.QueryRow(ctx, `SELECT deleted_at FROM replays WHERE replay_id = $1`, ids[0]).Scan(&still); err != nil {
		t.Fatal(err)
	}
	if !still.Equal(first) {
		t.Errorf("deleted_at moved from %s to %s on repeat", first, still)
	}
	if n := count(t, db, `SELECT count(*) FROM shred_receipts WHERE project_id = 1`); n != 2 {
		t.Errorf("receipt rows = %d, want 2", n)
	}
	var stored store.Receipt
	if err := db.Pool.QueryRow(ctx, `
		SELECT id, project_id, replay_ids, whole_project, segments_deleted, requested_by, created_at,
			completed_at IS NOT NULL
		FROM shred_receipts WHERE id = $1`, rc.ID).Scan(&stored.ID, &stored.ProjectID, &stored.ReplayIDs,
		&stored.WholeProject, &stored.SegmentsShredded, &stored.RequestedBy, &stored.ShreddedAt, &stored.Complete); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rc, stored); diff != "" {
		t.Errorf("stored receipt (-returned +stored):\n%s", diff)
	}

	if _, err := db.ShredReplays(ctx, 1, nil, "x"); err == nil {
		t.Error("shred of no replays: no error")
	}
}

func TestShredProject(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	seed(t, db, 1, 5, 3)
	other := seed(t, db, 2, 2, 3)

	rc, err := db.ShredProject(ctx, 1, "gdpr-tool")
	if err != nil {
		t.Fatal(err)
	}
	if !rc.WholeProject || rc.SegmentsShredded != 15 || rc.ProjectID != 1 || len(rc.ReplayIDs) != 0 {
		t.Errorf("receipt %+v, want whole project, 15 segments", rc)
	}
	if n := count(t, db, `SELECT count(*) FROM segments WHERE project_id = 1`); n != 0 {
		t.Errorf("segments left in project 1 = %d", n)
	}
	if n := count(t, db, `SELECT count(*) FROM replays WHERE project_id = 1 AND deleted_at IS NULL`); n != 0 {
		t.Errorf("live replays left in project 1 = %d", n)
	}
	if n := count(t, db, `SELECT count(*) FROM projects WHERE project_id = 1 AND deleted_at IS NOT NULL`); n != 1 {
		t.Errorf("project tombstone rows = %d, want 1", n)
	}
	if n := count(t, db, `SELECT count(*) FROM segments WHERE project_id = 2 AND replay_id = ANY($1)`, other); n != 6 {
		t.Errorf("segments of project 2 = %d, want 6", n)
	}
	if n := count(t, db, `SELECT count(*) FROM replays WHERE project_id = 2 AND deleted_at IS NOT NULL`); n != 0 {
		t.Errorf("tombstoned replays of project 2 = %d, want 0", n)
	}
	again, err := db.ShredProject(ctx, 1, "gdpr-tool")
	if err != nil || again.SegmentsShredded != 0 {
		t.Errorf("repeat: %+v, %v; want 0 segments", again, err)
	}
	// A project never seen still gets its tombstone.
	if _, err := db.ShredProject(ctx, 99, "gdpr-tool"); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, `SELECT count(*) FROM projects WHERE project_id = 99 AND deleted_at IS NOT NULL`); n != 1 {
		t.Errorf("tombstone of unknown project = %d rows, want 1", n)
	}
}

// TestConcurrentShredsDoNotDeadlock runs overlapping replay shreds and
// project shreds of one project at once: each must succeed (the sorted lock
// order, or at worst a retried deadlock, sees to it).
func TestConcurrentShredsDoNotDeadlock(t *testing.T) {
	db := newDB(t)
	ctx := context.Background()
	ids := seed(t, db, 1, 40, 2)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if i%4 == 3 {
				_, err = db.ShredProject(ctx, 1, "t")
			} else {
				sub := slices.Clone(ids)
				// Overlapping sets in different request orders.
				slices.Reverse(sub[i*3:])
				_, err = db.ShredReplays(ctx, 1, sub[i*3:], "t")
			}
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := count(t, db, `SELECT count(*) FROM segments`); n != 0 {
		t.Errorf("segments left = %d", n)
	}
	var total int
	if err := db.Pool.QueryRow(ctx, `SELECT sum(segments_deleted) FROM shred_receipts`).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total != 80 {
		t.Errorf("receipts account for %d segments, want 80 (each shredded exactly once)", total)
	}
}

// TestShredAndSweepAsShredRole runs every shred and sweep statement as a
// member of replayvault_shred, the role Shred's database user gets in
// production: row locks and deletes need no more.
func TestShredAndSweepAsShredRole(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.NewDB(t)
	admin, err := store.OpenURL(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	ids := seed(t, admin, 1, 2, 3)
	app := asRole(t, admin, dsn, "replayvault_shred")

	if rc, err := app.ShredReplays(ctx, 1, ids[:1], "app"); err != nil || rc.SegmentsShredded != 3 {
		t.Errorf("ShredReplays as app role: %+v, %v", rc, err)
	}
	if rc, err := app.ShredProject(ctx, 1, "app"); err != nil || rc.SegmentsShredded != 3 {
		t.Errorf("ShredProject as app role: %+v, %v", rc, err)
	}
	if _, err := app.ExpireSegments(ctx, time.Now(), 10); err != nil {
		t.Errorf("ExpireSegments as app role: %v", err)
	}
	if paths, err := app.DeleteEmptyBlobs(ctx, time.Now().Add(time.Minute), 10); err != nil || len(paths) != 1 {
		t.Errorf("DeleteEmptyBlobs as app role: %v, %v", paths, err)
	}
	if _, err := app.MissingBlobs(ctx, []string{"r90/x"}); err != nil {
		t.Errorf("MissingBlobs as app role: %v", err)
	}
}

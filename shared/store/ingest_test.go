package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/replaymeta"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/testenv"
)

func TestIngestKeys(t *testing.T) {
	ctx := context.Background()
	db := openServeDB(t, testenv.NewDB(t))
	k := store.IngestKey{PublicKey: "k1", ProjectID: 7, Origins: []string{"https://a.example"}, Label: "web"}
	if err := db.CreateIngestKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateIngestKey(ctx, store.IngestKey{PublicKey: "k2", ProjectID: 7}); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateIngestKey(ctx, k); err == nil {
		t.Error("a key was created twice")
	}
	got, err := db.LookupIngestKey(ctx, "k1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ProjectID != 7 || got.RevokedAt != nil || !cmp.Equal(got.Origins, k.Origins) || got.Label != "web" {
		t.Errorf("lookup = %+v", got)
	}
	if _, err := db.LookupIngestKey(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown key: %v, want ErrNotFound", err)
	}
	if err := db.RevokeIngestKey(ctx, 8, "k1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoke through another project: %v, want ErrNotFound", err)
	}
	if err := db.RevokeIngestKey(ctx, 7, "k1"); err != nil {
		t.Fatal(err)
	}
	if got, err := db.LookupIngestKey(ctx, "k1"); err != nil || got.RevokedAt == nil {
		t.Errorf("after revoke: %+v, %v", got, err)
	}
	list, err := db.IngestKeys(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[1].Origins == nil {
		t.Errorf("list = %+v", list)
	}
}

func TestBatchSegmentID(t *testing.T) {
	ctx := context.Background()
	db := openServeDB(t, testenv.NewDB(t))
	r := uuid.New()
	tests := []struct {
		key       string
		want, got int
	}{
		{"a", 10, 10},
		{"b", 10, 11}, // 10 is taken by another batch
		{"a", 50, 10}, // a retry keeps its number
		{"c", 5, 5},
		{"d", 11, 12},
	}
	for _, tt := range tests {
		n, err := db.BatchSegmentID(ctx, 1, r, []byte(tt.key), tt.want, segment.MaxSegmentID)
		if err != nil {
			t.Fatal(err)
		}
		if n != tt.got {
			t.Errorf("batch %s wanting %d got %d, want %d", tt.key, tt.want, n, tt.got)
		}
	}
	// Another replay has its own numbers.
	if n, _ := db.BatchSegmentID(ctx, 1, uuid.New(), []byte("a"), 10, segment.MaxSegmentID); n != 10 {
		t.Errorf("another replay got %d, want 10", n)
	}
	// At the limit there is nothing left.
	if _, err := db.BatchSegmentID(ctx, 1, r, []byte("e"), 12, 12); !errors.Is(err, store.ErrNoSegmentID) {
		t.Errorf("full range: %v, want ErrNoSegmentID", err)
	}

	// Concurrent numbering: distinct batches get distinct numbers, and the
	// same batch one number, however they interleave.
	r2 := uuid.New()
	var mu sync.Mutex
	byKey := map[string]map[int]bool{}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprint(i % 20)
			n, err := db.BatchSegmentID(ctx, 1, r2, []byte(key), 0, segment.MaxSegmentID)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if byKey[key] == nil {
				byKey[key] = map[int]bool{}
			}
			byKey[key][n] = true
		}()
	}
	wg.Wait()
	seen := map[int]string{}
	for key, ns := range byKey {
		if len(ns) != 1 {
			t.Errorf("batch %s got numbers %v", key, ns)
		}
		for n := range ns {
			if other, dup := seen[n]; dup {
				t.Errorf("batches %s and %s share number %d", key, other, n)
			}
			seen[n] = key
		}
	}
}

func TestReplayMetaFromSegments(t *testing.T) {
	ctx := context.Background()
	db := openServeDB(t, testenv.NewDB(t))
	r := uuid.New()
	kek := uuid.New()
	if err := db.InsertKEK(ctx, kek, "k", []byte("w")); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	seg := func(id int, m replaymeta.Meta) store.Segment {
		return store.Segment{
			ID: segment.ID{ProjectID: 3, ReplayID: r, SegmentID: id, Type: segment.DefaultType}, BlobPath: fmt.Sprint("b", id),
			ByteStart: 0, ByteStop: 10, Encoding: segment.Zstd, KEKID: kek, WrappedDEK: []byte{1},
			RetentionDays: 90, CreatedAt: now, ExpiresAt: now.Add(time.Hour), Meta: m,
		}
	}
	commits := []store.Segment{
		seg(0, replaymeta.Meta{Source: "sentry", SourceID: strings.Repeat("ab", 16), ReplayType: "session", SDK: "sdk/1",
			UserAgentFamily: "Chrome", URLs: []string{"u1", "u2"}, ErrorIDs: []string{"e1"}}),
		seg(1, replaymeta.Meta{}),
		seg(2, replaymeta.Meta{Source: "other", ReplayType: "buffer", URLs: []string{"u2", "u3"}, TraceIDs: []string{"t1"}}),
	}
	for _, s := range commits {
		if _, err := db.CommitBatch(ctx, store.Blob{Path: s.BlobPath, RetentionDays: 90, Size: 10, SegmentCount: 1}, []store.Segment{s}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.ReplayMeta(ctx, 3, r)
	if err != nil {
		t.Fatal(err)
	}
	want := replaymeta.Meta{Source: "sentry", SourceID: strings.Repeat("ab", 16), ReplayType: "session", SDK: "sdk/1",
		UserAgentFamily: "Chrome", URLs: []string{"u1", "u2", "u3"}, ErrorIDs: []string{"e1"}, TraceIDs: []string{"t1"}}
	if diff := cmp.Diff(want, got.Meta); diff != "" {
		t.Errorf("meta (-want +got):\n%s", diff)
	}
}

// TestIngestRoleReadsKeysOnly checks the role Ingest's database user gets.
func TestIngestRoleReadsKeysOnly(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.NewDB(t)
	admin, err := store.OpenURL(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	c := asRole(t, admin, dsn, "replayvault_ingest").Pool
	ok := []string{
		`SELECT count(*) FROM ingest_keys`,
		`INSERT INTO ingest_batches (project_id, replay_id, batch_key, segment_id) VALUES (1, gen_random_uuid(), 'x', 0)`,
	}
	for _, q := range ok {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Errorf("ingest role cannot %q: %v", q, err)
		}
	}
	denied := []string{
		`INSERT INTO ingest_keys (public_key, project_id) VALUES ('x', 1)`,
		`UPDATE ingest_keys SET revoked_at = now()`,
		`SELECT count(*) FROM segments`,
		`SELECT count(*) FROM keks`,
		`SELECT count(*) FROM replays`,
		`DELETE FROM ingest_batches`,
	}
	for _, q := range denied {
		if _, err := c.Exec(ctx, q); err == nil {
			t.Errorf("ingest role may %q", q)
		}
	}
}

func TestForgetIngestBatches(t *testing.T) {
	ctx := context.Background()
	db := openServeDB(t, testenv.NewDB(t))
	r := uuid.New()
	for i, key := range []string{"old1", "old2", "new"} {
		if _, err := db.BatchSegmentID(ctx, 1, r, []byte(key), i, segment.MaxSegmentID); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE ingest_batches SET created_at = now() - interval '8 days' WHERE batch_key IN ('old1', 'old2')`); err != nil {
		t.Fatal(err)
	}
	cutoff := time.Now().Add(-store.IngestBatchMemory)
	if n, err := db.ForgetIngestBatches(ctx, cutoff, 1); err != nil || n != 1 {
		t.Fatalf("first pass: %d, %v; want 1", n, err)
	}
	if n, err := db.ForgetIngestBatches(ctx, cutoff, 10); err != nil || n != 1 {
		t.Fatalf("second pass: %d, %v; want 1", n, err)
	}
	// The recent batch keeps its number.
	if n, err := db.BatchSegmentID(ctx, 1, r, []byte("new"), 50, segment.MaxSegmentID); err != nil || n != 2 {
		t.Errorf("recent batch renumbered: %d, %v", n, err)
	}
}

package store_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
	"github.com/replayvault/replayvault/shared/testenv"
)

func openServeDB(t *testing.T, dsn string) *store.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := store.OpenURL(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

// seedSegments commits one blob per entry of blobs, holding the segments listed for
// it (in that byte order), all under one KEK.
func seedSegments(t *testing.T, db *store.DB, project int64, replay uuid.UUID, typ string, blobs map[string][]int) {
	t.Helper()
	ctx := context.Background()
	kek := uuid.New()
	if err := db.InsertKEK(ctx, kek, "projects/p/locations/l/keyRings/r/cryptoKeys/k", []byte("wrapped")); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for path, ids := range blobs {
		var segs []store.Segment
		var off int64
		for _, id := range ids {
			size := int64(100 + id)
			segs = append(segs, store.Segment{
				ID:         segment.ID{ProjectID: project, ReplayID: replay, SegmentID: id, Type: typ},
				BlobPath:   path,
				ByteStart:  off,
				ByteStop:   off + size,
				Encoding:   segment.Zstd,
				RawSize:    10 * size,
				EventCount: 3,
				FirstTS:    1_700_000_000_000 + int64(id)*1000, LastTS: 1_700_000_000_500 + int64(id)*1000,
				KEKID:         kek,
				WrappedDEK:    []byte{byte(id)},
				RetentionDays: 90,
				CreatedAt:     now,
				ExpiresAt:     now.Add(90 * 24 * time.Hour),
			})
			off += size
		}
		if _, err := db.CommitBatch(ctx, store.Blob{Path: path, RetentionDays: 90, Size: off, SegmentCount: len(segs)}, segs); err != nil {
			t.Fatal(err)
		}
	}
}

func execSQL(t *testing.T, db *store.DB, sql string, args ...any) {
	t.Helper()
	if _, err := db.Pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func TestReplayMeta(t *testing.T) {
	db := openServeDB(t, testenv.NewDB(t))
	ctx := context.Background()
	live, shredded, inDeadProject := uuid.New(), uuid.New(), uuid.New()
	seedSegments(t, db, 1, live, "recording", map[string][]int{"b1": {0, 2}, "b2": {1}})
	seedSegments(t, db, 1, shredded, "recording", map[string][]int{"b3": {0}})
	seedSegments(t, db, 2, inDeadProject, "recording", map[string][]int{"b4": {0}})
	replayGone := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	projectGone := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	execSQL(t, db, `UPDATE replays SET deleted_at = $1 WHERE replay_id = $2`, replayGone, shredded)
	execSQL(t, db, `UPDATE projects SET deleted_at = $1 WHERE project_id = 2`, projectGone)

	got, err := db.ReplayMeta(ctx, 1, live)
	if err != nil {
		t.Fatal(err)
	}
	started, ended := int64(1_700_000_000_000), int64(1_700_000_002_500)
	want := &store.Replay{
		ProjectID: 1, ReplayID: live, RetentionDays: 90, SegmentCount: 3,
		StoredBytes: 100 + 101 + 102, RawBytes: 10 * (100 + 101 + 102),
		StartedAtMS: &started, EndedAtMS: &ended,
	}
	if diff := cmp.Diff(want, got, cmpIgnoreSeen); diff != "" {
		t.Errorf("live replay (-want +got):\n%s", diff)
	}
	if got.FirstSeen.IsZero() || got.LastSeen.Before(got.FirstSeen) {
		t.Errorf("first/last seen = %v/%v", got.FirstSeen, got.LastSeen)
	}
	if _, gone := got.Shredded(); gone {
		t.Error("live replay reported shredded")
	}

	tests := []struct {
		name    string
		project int64
		replay  uuid.UUID
		want    time.Time
	}{
		{"shredded replay", 1, shredded, replayGone},
		{"replay of a shredded project", 2, inDeadProject, projectGone},
		{"unknown replay of a shredded project", 2, uuid.New(), projectGone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := db.ReplayMeta(ctx, tc.project, tc.replay)
			if err != nil {
				t.Fatal(err)
			}
			at, gone := m.Shredded()
			if !gone || !at.Equal(tc.want) {
				t.Errorf("Shredded() = %v, %v; want %v, true", at, gone, tc.want)
			}
		})
	}

	for _, tc := range []struct {
		name    string
		project int64
		replay  uuid.UUID
	}{
		{"unknown replay", 1, uuid.New()},
		{"replay of another project", 3, live},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := db.ReplayMeta(ctx, tc.project, tc.replay); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("err = %v, want ErrNotFound", err)
			}
		})
	}
}

var cmpIgnoreSeen = cmp.FilterPath(func(p cmp.Path) bool {
	s := p.String()
	return s == "FirstSeen" || s == "LastSeen"
}, cmp.Ignore())

func TestReplaySegments(t *testing.T) {
	db := openServeDB(t, testenv.NewDB(t))
	ctx := context.Background()
	replay, other := uuid.New(), uuid.New()
	// Interleaved across blobs, stored out of order within them.
	seedSegments(t, db, 1, replay, "recording", map[string][]int{"a": {4, 0, 2, 6}, "b": {1, 3, 5, 7, 9}, "c": {8}})
	seedSegments(t, db, 1, replay, "console", map[string][]int{"d": {0, 1}})
	seedSegments(t, db, 1, other, "recording", map[string][]int{"e": {0, 1, 2}})
	// Expired but not swept yet: never served.
	execSQL(t, db, `UPDATE segments SET expires_at = now() - interval '1 second'
		WHERE replay_id = $1 AND type = 'recording' AND segment_id = 9`, replay)

	ids := func(segs []store.Segment) []int {
		var out []int
		for _, s := range segs {
			out = append(out, s.ID.SegmentID)
		}
		return out
	}
	tests := []struct {
		name     string
		typ      string
		from, to int
		want     []int
	}{
		{"all", "recording", 0, 1 << 31, []int{0, 1, 2, 3, 4, 5, 6, 7, 8}},
		{"range", "recording", 2, 5, []int{2, 3, 4, 5}},
		{"one", "recording", 7, 7, []int{7}},
		{"open end", "recording", 6, 1<<31 - 1, []int{6, 7, 8}},
		{"past the end", "recording", 20, 30, nil},
		{"other type", "console", 0, 100, []int{0, 1}},
		{"type without segments", "network", 0, 100, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			meta, segs, err := db.ReplaySegments(ctx, 1, replay, tc.typ, tc.from, tc.to)
			if err != nil {
				t.Fatal(err)
			}
			// segment_count counts the recording's segments (the expired
			// one too, until the sweep); slices are not segments of it.
			if meta.ReplayID != replay || meta.SegmentCount != 9+1 {
				t.Errorf("meta = %+v", meta)
			}
			if diff := cmp.Diff(tc.want, ids(segs)); diff != "" {
				t.Errorf("segment ids (-want +got):\n%s", diff)
			}
			for _, s := range segs {
				if s.ID.ProjectID != 1 || s.ID.ReplayID != replay || s.ID.Type != tc.typ ||
					s.ByteStop-s.ByteStart != int64(100+s.ID.SegmentID) || s.Encoding != segment.Zstd ||
					len(s.WrappedDEK) != 1 || s.WrappedDEK[0] != byte(s.ID.SegmentID) || s.KEKID == uuid.Nil {
					t.Errorf("segment %d row = %+v", s.ID.SegmentID, s)
				}
			}
		})
	}

	t.Run("unknown replay", func(t *testing.T) {
		if _, _, err := db.ReplaySegments(ctx, 1, uuid.New(), "recording", 0, 10); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
	})
	t.Run("shredded", func(t *testing.T) {
		execSQL(t, db, `UPDATE replays SET deleted_at = now() WHERE replay_id = $1`, other)
		meta, segs, err := db.ReplaySegments(ctx, 1, other, "recording", 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if _, gone := meta.Shredded(); !gone || segs != nil {
			t.Errorf("shredded replay: gone=%v, %d segments; want gone and no segments", gone, len(segs))
		}
	})
}

// TestServeQueriesDatabaseDown: with the database unreachable, both
// queries fail with ErrUnavailable (the caller's 503).
func TestServeQueriesDatabaseDown(t *testing.T) {
	dsn := testenv.NewDB(t)
	p := startDBProxy(t, dsn)
	db := openServeDB(t, p.dsn)
	replay := uuid.New()
	seedSegments(t, db, 1, replay, "recording", map[string][]int{"a": {0}})
	p.stop()
	ctx := context.Background()
	if _, err := db.ReplayMeta(ctx, 1, replay); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("ReplayMeta: err = %v, want ErrUnavailable", err)
	}
	if _, _, err := db.ReplaySegments(ctx, 1, replay, "recording", 0, 10); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("ReplaySegments: err = %v, want ErrUnavailable", err)
	}
}

// dbProxy forwards TCP connections to the database until stopped; then the
// database is down as far as its clients can tell: open connections break
// and new ones are refused.
type dbProxy struct {
	dsn string
	l   net.Listener

	mu    sync.Mutex
	conns []net.Conn
}

func startDBProxy(t *testing.T, dsn string) *dbProxy {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.Host = l.Addr().String()
	p := &dbProxy{dsn: u.String(), l: l}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(p.stop)
	return p
}

func (p *dbProxy) stop() {
	p.l.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

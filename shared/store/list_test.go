package store_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/store"
)

// listRow is a replay row as the list test seeds it.
type listRow struct {
	id           uuid.UUID
	started      *int64
	ended        int64
	segments     int
	deleted      bool
	otherProject bool
}

// seedList inserts rows straight into replays.
func seedList(t testing.TB, db *store.DB, project int64, rows []listRow) {
	t.Helper()
	for _, r := range rows {
		p := project
		if r.otherProject {
			p = project + 1
		}
		var deleted *time.Time
		if r.deleted {
			now := time.Now()
			deleted = &now
		}
		var ended *int64
		if r.started != nil {
			ended = &r.ended
		}
		if _, err := db.Pool.Exec(context.Background(), `
			INSERT INTO replays (project_id, replay_id, retention_days, first_seen, last_seen, segment_count,
				started_at_ms, ended_at_ms, deleted_at)
			VALUES ($1, $2, 90, now(), now(), $3, $4, $5, $6)`,
			p, r.id, r.segments, r.started, ended, deleted); err != nil {
			t.Fatal(err)
		}
	}
}

// TestListReplays pages through a project's replays with each filter and
// small limits and scan budgets, and checks the concatenated pages against
// the rows filtered and sorted in Go: newest first, each replay once,
// nothing deleted, from another project or without a timestamp.
func TestListReplays(t *testing.T) {
	db := newDB(t)
	const project = 5
	rng := rand.New(rand.NewPCG(9, 9))
	var rows []listRow
	for i := range 300 {
		started := int64(1_700_000_000_000) + int64(rng.IntN(100))*60_000 // many ties
		r := listRow{id: uuid.New(), started: &started, ended: started + int64(rng.IntN(3_600_000)),
			segments: rng.IntN(50), deleted: i%17 == 0, otherProject: i%23 == 0}
		if i%29 == 0 {
			r.started = nil
		}
		rows = append(rows, r)
	}
	seedList(t, db, project, rows)

	want := func(f store.ListFilter) []uuid.UUID {
		var keep []listRow
		for _, r := range rows {
			if r.deleted || r.otherProject || r.started == nil {
				continue
			}
			s := *r.started
			if s < f.FromTS || (f.ToTS > 0 && s > f.ToTS) || r.ended-s < f.MinDurationMS || r.segments < f.MinSegments {
				continue
			}
			keep = append(keep, r)
		}
		sort.Slice(keep, func(i, j int) bool {
			if *keep[i].started != *keep[j].started {
				return *keep[i].started > *keep[j].started
			}
			return slices.Compare(keep[i].id[:], keep[j].id[:]) > 0
		})
		ids := []uuid.UUID{}
		for _, r := range keep {
			ids = append(ids, r.id)
		}
		return ids
	}

	for _, tc := range []struct {
		name         string
		f            store.ListFilter
		limit, scan  int
		wantAllPages bool
	}{
		{"all", store.ListFilter{}, 7, 1000, true},
		{"one page", store.ListFilter{}, 500, 1000, true},
		{"time range", store.ListFilter{FromTS: 1_700_000_000_000 + 20*60_000, ToTS: 1_700_000_000_000 + 60*60_000}, 10, 1000, true},
		{"duration", store.ListFilter{MinDurationMS: 1_800_000}, 9, 1000, true},
		{"segments", store.ListFilter{MinSegments: 40}, 5, 1000, true},
		{"tight budget", store.ListFilter{MinSegments: 45}, 5, 13, true},
		{"nothing matches", store.ListFilter{MinSegments: 1000}, 5, 50, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := []uuid.UUID{}
			var after *store.ListCursor
			for pages := 0; ; pages++ {
				if pages > 1000 {
					t.Fatal("no end to the pages")
				}
				page, err := db.ListReplays(context.Background(), project, tc.f, after, tc.limit, tc.scan)
				if err != nil {
					t.Fatal(err)
				}
				if len(page.Replays) > tc.limit {
					t.Fatalf("page of %d, limit %d", len(page.Replays), tc.limit)
				}
				for _, r := range page.Replays {
					got = append(got, r.ReplayID)
				}
				if page.Next == nil {
					break
				}
				after = page.Next
			}
			if diff := cmp.Diff(want(tc.f), got); diff != "" {
				t.Errorf("list (-want +got):\n%s", diff)
			}
		})
	}

}

// TestListReplaysByMetadata filters on what Ingest recorded about a replay:
// a URL substring and an error id; replays without metadata never match.
func TestListReplaysByMetadata(t *testing.T) {
	db := newDB(t)
	const project = 31
	ts := func(v int64) *int64 { return &v }
	checkout, home, bare := uuid.New(), uuid.New(), uuid.New()
	seedList(t, db, project, []listRow{
		{id: checkout, started: ts(3000), ended: 4000, segments: 2},
		{id: home, started: ts(2000), ended: 3000, segments: 2},
		{id: bare, started: ts(1000), ended: 2000, segments: 2},
	})
	for id, meta := range map[uuid.UUID][2][]string{
		checkout: {{"https://shop.example/cart", "https://shop.example/checkout?step=2"}, {"e1", "e2"}},
		home:     {{"https://shop.example/"}, {"e3"}},
	} {
		if _, err := db.Pool.Exec(context.Background(),
			`UPDATE replays SET urls = $3, error_ids = $4 WHERE project_id = $1 AND replay_id = $2`,
			project, id, meta[0], meta[1]); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		f    store.ListFilter
		want []uuid.UUID
	}{
		{"no filter", store.ListFilter{}, []uuid.UUID{checkout, home, bare}},
		{"url substring", store.ListFilter{URL: "/checkout"}, []uuid.UUID{checkout}},
		{"url on every page of the site", store.ListFilter{URL: "shop.example"}, []uuid.UUID{checkout, home}},
		{"url nobody visited", store.ListFilter{URL: "/admin"}, nil},
		{"error id", store.ListFilter{ErrorID: "e3"}, []uuid.UUID{home}},
		{"error id is exact, not a substring", store.ListFilter{ErrorID: "e"}, nil},
		{"both", store.ListFilter{URL: "cart", ErrorID: "e2"}, []uuid.UUID{checkout}},
		{"both, disagreeing", store.ListFilter{URL: "cart", ErrorID: "e3"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			page, err := db.ListReplays(context.Background(), project, tc.f, nil, 10, 100)
			if err != nil {
				t.Fatal(err)
			}
			var got []uuid.UUID
			for _, r := range page.Replays {
				got = append(got, r.ReplayID)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("list (-want +got):\n%s", diff)
			}
		})
	}
}

// BenchmarkListReplays measures one list page (50 replays, newest first)
// on a project of 1,000,000 replay rows, seeded with generate_series
// outside the timer, for the first page, a deep page (by cursor) and a
// filter that matches few rows (which the scan budget bounds).
//
//	go test -run '^$' -bench BenchmarkListReplays -benchtime 200x ./shared/store/
//
// Reports p50 and p99 latency per page beside ns/op.
func BenchmarkListReplays(b *testing.B) {
	db := newDB(b)
	ctx := context.Background()
	const project, n = 9, 1_000_000
	if _, err := db.Pool.Exec(ctx, `
		INSERT INTO replays (project_id, replay_id, retention_days, first_seen, last_seen, segment_count,
			started_at_ms, ended_at_ms, deleted_at)
		SELECT $1, gen_random_uuid(), 90, now(), now(), 1 + i % 200,
			1700000000000 + i * 1000, 1700000000000 + i * 1000 + (i % 7200) * 1000,
			CASE WHEN i % 50 = 0 THEN now() END
		FROM generate_series(1, $2) AS i`, project, n); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `ANALYZE replays`); err != nil {
		b.Fatal(err)
	}
	deep := &store.ListCursor{StartedAtMS: 1700000000000 + n/2*1000, ReplayID: uuid.Max}
	for _, bc := range []struct {
		name  string
		f     store.ListFilter
		after *store.ListCursor
	}{
		{"first", store.ListFilter{}, nil},
		{"deep", store.ListFilter{}, deep},
		{"rare", store.ListFilter{MinSegments: 199, MinDurationMS: 7_000_000}, nil},
	} {
		b.Run(bc.name, func(b *testing.B) {
			lat := make([]time.Duration, 0, b.N)
			for i := 0; i < b.N; i++ {
				start := time.Now()
				if _, err := db.ListReplays(ctx, project, bc.f, bc.after, 50, 5000); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

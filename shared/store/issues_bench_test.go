package store_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/store"
)

// seedGroups creates n groups of project straight in the tables, the first
// two holding occs occurrence rows between them (spread over 1,000
// replays), with counters to match.
func seedGroups(b *testing.B, db *store.DB, project int64, n, occs int) {
	b.Helper()
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `INSERT INTO issue_projects (project_id, last_id) VALUES ($1, $2)`, project, n); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `
		INSERT INTO issue_groups (project_id, id, kind, fingerprint, title, times_seen, row_count, replay_count, first_ts, last_ts)
		SELECT $1, i, 'dead_click', 'v1:' || i, 'Dead click ' || i, c, c, 1, 1700000000000, 1700000000000 + i
		FROM generate_series(1, $2::bigint) AS i, LATERAL (SELECT CASE WHEN i <= 2 THEN $3::bigint / 2 ELSE 1 END AS c) AS x`,
		project, n, occs); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `
		INSERT INTO issue_occurrences (project_id, group_id, replay_id, segment_id, ts, kind, edge_fp, final_fp, details)
		SELECT $1, 1 + i % 2, ('00000000-0000-4000-8000-' || lpad(to_hex(i % 1000), 12, '0'))::uuid, i / 1000,
			1700000000000 + i, 'dead_click', 'e', 'v1:' || (1 + i % 2), '{"target":"button#buy"}'
		FROM generate_series(0, $2 - 1) AS i`, project, occs); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkMergeUnmerge merges two groups and unmerges them again: the
// cost must not depend on how many occurrences the groups hold. Compare
// the ns/op of the two sizes (they should be within 2x).
func BenchmarkMergeUnmerge(b *testing.B) {
	for _, occs := range []int{1_000, 1_000_000} {
		b.Run(fmt.Sprintf("occurrences=%d", occs), func(b *testing.B) {
			db := newDB(b)
			seedGroups(b, db, 1, 10, occs)
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				v, err := db.Merge(ctx, 1, []int64{1, 2})
				if err != nil {
					b.Fatal(err)
				}
				if err := db.Unmerge(ctx, 1, v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkListIssues pages through 10,000 issues (a tenth of them merged
// in pairs) 100 at a time and reports the p50 and p99 of one page.
func BenchmarkListIssues(b *testing.B) {
	db := newDB(b)
	const n = 10_000
	seedGroups(b, db, 1, n, 1_000)
	ctx := context.Background()
	pairs := 0
	for i := int64(3); i < n; i += 20 {
		if _, err := db.Merge(ctx, 1, []int64{i, i + 1}); err != nil {
			b.Fatal(err)
		}
		pairs++
	}
	var pages []time.Duration
	b.ResetTimer()
	for b.Loop() {
		var before int64
		seen := 0
		for {
			start := time.Now()
			list, err := db.ListIssues(ctx, 1, before, store.MaxIssuePage)
			if err != nil {
				b.Fatal(err)
			}
			pages = append(pages, time.Since(start))
			seen += len(list)
			if len(list) < store.MaxIssuePage {
				break
			}
			before = list[len(list)-1].ID
		}
		if want := n - pairs; seen != want { // each merge: two groups under one view
			b.Fatalf("walked %d issues, want %d", seen, want)
		}
	}
	b.StopTimer()
	slices.Sort(pages)
	b.ReportMetric(float64(pages[len(pages)/2].Microseconds())/1000, "p50-page-ms")
	b.ReportMetric(float64(pages[len(pages)*99/100].Microseconds())/1000, "p99-page-ms")
}

// BenchmarkThrottle commits segments that each hold 100 occurrences of
// one edge fingerprint within one window: rows stay at the throttle's
// quota while the group's count stays exact.
func BenchmarkThrottle(b *testing.B) {
	db := newDB(b)
	db.SetIssueThrottle(store.IssueThrottle{Rows: 100, Window: time.Hour})
	s := newIssueSeeder(b, db)
	ctx := context.Background()
	var occs []store.Occurrence
	for i := range 100 {
		occs = append(occs, occ("hot", baseTS+int64(i)))
	}
	segs := 0
	for b.Loop() {
		s.commit(1, uuid.New(), 0, occs...)
		segs++
	}
	b.StopTimer()
	g, err := db.GroupState(ctx, 1, groupOf(b, db, 1, "hot"))
	if err != nil {
		b.Fatal(err)
	}
	rows := count(b, db, `SELECT count(*) FROM issue_occurrences`)
	if g.TimesSeen != int64(segs*100) || rows > 100 || g.RowCount != int64(rows) {
		b.Fatalf("times seen %d (want %d), rows %d (want at most 100)", g.TimesSeen, segs*100, rows)
	}
	b.ReportMetric(float64(rows), "rows")
	b.ReportMetric(float64(g.TimesSeen), "occurrences")
}

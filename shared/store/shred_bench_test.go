package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/shared/store"
)

// BenchmarkShred measures shredding 1,000 replays of 20 segments each
// (20,000 wrapped DEKs) on the local PostgreSQL; one op is all 1,000
// replays. Rows are seeded with SQL outside the timer.
//
//	go test -run '^$' -bench BenchmarkShred -benchtime 20x ./shared/store/
//
// batch: one replays:shred call with 1,000 ids; single: 1,000 DELETE calls
// of one replay each; project: one project-wide shred.
func BenchmarkShred(b *testing.B) {
	const replays, perReplay = 1000, 20
	ctx := context.Background()
	// Each sub-benchmark gets a fresh database, so one's dead rows do not
	// slow the next.
	run := func(b *testing.B, shred func(db *store.DB, project int64, ids []uuid.UUID)) {
		b.StopTimer() // the timer runs only around the shred itself
		db := newDB(b)
		var elapsed time.Duration
		for i := 0; i < b.N; i++ {
			project := int64(1000 + i)
			ids := seed(b, db, project, replays, perReplay)
			if _, err := db.Pool.Exec(ctx, `ANALYZE segments; ANALYZE replays`); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			start := time.Now()
			shred(db, project, ids)
			elapsed += time.Since(start)
			b.StopTimer()
			if n := count(b, db, `SELECT count(*) FROM segments WHERE project_id = $1`, project); n != 0 {
				b.Fatalf("%d segments left", n)
			}
		}
		b.ReportMetric(float64(elapsed.Microseconds())/float64(b.N*replays), "µs/replay")
		b.ReportMetric(float64(b.N*replays*perReplay)/elapsed.Seconds(), "segments/s")
	}
	b.Run("batch", func(b *testing.B) {
		run(b, func(db *store.DB, project int64, ids []uuid.UUID) {
			rc, err := db.ShredReplays(ctx, project, ids, "bench")
			if err != nil || rc.SegmentsShredded != replays*perReplay {
				b.Fatalf("shred: %+v, %v", rc.SegmentsShredded, err)
			}
		})
	})
	b.Run("single", func(b *testing.B) {
		run(b, func(db *store.DB, project int64, ids []uuid.UUID) {
			for _, id := range ids {
				if _, err := db.ShredReplays(ctx, project, []uuid.UUID{id}, "bench"); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("project", func(b *testing.B) {
		run(b, func(db *store.DB, project int64, _ []uuid.UUID) {
			rc, err := db.ShredProject(ctx, project, "bench")
			if err != nil || rc.SegmentsShredded != replays*perReplay {
				b.Fatalf("shred: %+v, %v", rc.SegmentsShredded, err)
			}
		})
	})
}

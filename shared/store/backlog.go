package store

import (
	"context"
	"fmt"
	"time"
)

// maxBacklogCount caps SweepBacklog's count, so that reading it costs a
// bounded index scan however far the sweep has fallen behind.
const maxBacklogCount = 1_000_000

// SweepBacklog counts the segment rows past their retention at now that
// are still stored (the sweep's expire pass has not reached them), up to
// 1,000,000. It reads the expires_at index only.
func (db *DB) SweepBacklog(ctx context.Context, now time.Time) (int64, error) {
	ctx, cancel := db.WithTimeout(ctx)
	defer cancel()
	var n int64
	err := db.Pool.QueryRow(ctx, `
		SELECT count(*) FROM (SELECT 1 FROM segments WHERE expires_at <= $1 LIMIT $2) AS e`,
		now, maxBacklogCount).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count sweep backlog: %w", classify(err))
	}
	return n, nil
}

package serve

import "sync"

// budget counts the bytes that all of an instance's requests hold: ranged
// reads in flight and decoded segments not yet written. Read-ahead only
// starts while the count stays within the limit; the one read a request's
// writer waits for always starts (forced), so no request can be starved by
// the read-ahead of others, and the count exceeds the limit by at most one
// read and its decoded segments per request.
type budget struct {
	limit int64

	mu   sync.Mutex
	held int64
	peak int64
}

func newBudget(limit int64) *budget { return &budget{limit: limit} }

// take adds n if it fits within the limit, or whatever the count when
// force is set, and reports whether it did.
func (b *budget) take(n int64, force bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !force && b.held+n > b.limit {
		return false
	}
	b.held += n
	b.peak = max(b.peak, b.held)
	return true
}

// give returns n (negative n takes more, forced).
func (b *budget) give(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held -= n
	b.peak = max(b.peak, b.held)
}

// usage returns the bytes held now and at most so far.
func (b *budget) usage() (held, peak int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held, b.peak
}

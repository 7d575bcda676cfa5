package serve

import (
	"context"
	"slices"
	"sync"
)

// budget counts the bytes that all of an instance's requests hold: their
// pages of segment rows, ranged reads in flight and decoded segments not
// yet written, and keeps the count within the limit.
//
// Each page of a request is served under a lease, claimed before its
// first read: the page's rows plus what the reads its writer waits for
// can hold at once (leaseBytes). The lease carries those reads, so they
// never wait for other requests' read-ahead; read-ahead takes what the
// leases leave. Claims wait in arrival order, and read-ahead does not take
// what the oldest claim waits for, so a long stream of read-ahead cannot
// starve a new request.
//
// A lease waits while the instance is full; a request holds nothing else
// when it claims one, so waiting cannot deadlock. The one way past the
// limit is force: a lease is capped at the limit, and a read the writer
// needs that does not fit a capped lease starts anyway, as waiting for
// others could deadlock; the overshoot is counted. Configuration keeps it
// from happening: a lease is at most a page of rows, the span of the
// read-ahead window and one read (see leaseBytes), and MAX_INFLIGHT_BYTES
// must be at least four reads.
type budget struct {
	limit int64

	mu     sync.Mutex
	held   int64
	peak   int64
	forced int64     // bytes taken past the limit, in all
	queue  []*waiter // claims waiting, oldest first
}

// waiter is a claim waiting for room.
type waiter struct {
	n     int64
	ready chan struct{} // closed once granted
}

func newBudget(limit int64) *budget { return &budget{limit: limit} }

// claim takes n, waiting in arrival order until it fits. n above the limit
// is granted as the limit (when nothing else is held). It fails only when
// ctx ends first, holding nothing then.
func (b *budget) claim(ctx context.Context, n int64) (int64, error) {
	n = min(n, b.limit)
	b.mu.Lock()
	if len(b.queue) == 0 && b.held+n <= b.limit {
		b.add(n)
		b.mu.Unlock()
		return n, nil
	}
	w := &waiter{n: n, ready: make(chan struct{})}
	b.queue = append(b.queue, w)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return n, nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-w.ready: // granted meanwhile: give it back
		b.held -= n
	default:
		b.queue = slices.DeleteFunc(b.queue, func(q *waiter) bool { return q == w })
	}
	b.grant()
	return 0, ctx.Err()
}

// take adds n if it fits beside what the oldest waiting claim needs, and
// reports whether it did. Read-ahead uses it.
func (b *budget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	need := int64(0)
	if len(b.queue) > 0 {
		need = b.queue[0].n
	}
	if b.held+n+need > b.limit {
		return false
	}
	b.add(n)
	return true
}

// force adds n whatever the count.
func (b *budget) force(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.forced += max(0, min(n, b.held+n-b.limit))
	b.add(n)
}

// give returns n (negative n takes -n more, forced).
func (b *budget) give(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n < 0 {
		b.forced += max(0, min(-n, b.held-n-b.limit))
		b.add(-n)
		return
	}
	b.held -= n
	b.grant()
}

func (b *budget) add(n int64) {
	b.held += n
	b.peak = max(b.peak, b.held)
}

// grant hands room to the waiting claims, oldest first.
func (b *budget) grant() {
	for len(b.queue) > 0 && b.held+b.queue[0].n <= b.limit {
		w := b.queue[0]
		b.queue = b.queue[1:]
		b.add(w.n)
		close(w.ready)
	}
}

// usage returns the bytes held now and at most so far.
func (b *budget) usage() (held, peak int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held, b.peak
}

// overshoot returns the bytes forced past the limit so far.
func (b *budget) overshoot() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.forced
}

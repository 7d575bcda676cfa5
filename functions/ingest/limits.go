package ingest

import (
	"math"
	"net/http"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// limiterCount bounds the token buckets one instance keeps per kind; an
// evicted bucket starts full again, which only ever errs toward serving.
const limiterCount = 10_000

// limiter holds the token buckets of keys and projects on one instance.
// Limits are per instance: with N instances a key may send N times its
// rate, which Ingest's max instance count bounds.
type limiter struct {
	keyRate, projectRate   rate.Limit
	keyBurst, projectBurst int

	mu       sync.Mutex
	keys     *lru.Cache[string, *rate.Limiter]
	projects *lru.Cache[int64, *rate.Limiter]
}

func newLimiter(keyRate float64, keyBurst int, projectRate float64, projectBurst int) *limiter {
	keys, _ := lru.New[string, *rate.Limiter](limiterCount)
	projects, _ := lru.New[int64, *rate.Limiter](limiterCount)
	return &limiter{
		keyRate: rate.Limit(keyRate), keyBurst: keyBurst,
		projectRate: rate.Limit(projectRate), projectBurst: projectBurst,
		keys: keys, projects: projects,
	}
}

// allow takes one token from the key's and the project's buckets, or none
// from either and an *Error (429) saying how long to wait.
func (l *limiter) allow(key string, project int64, now time.Time) error {
	l.mu.Lock()
	kb, ok := l.keys.Get(key)
	if !ok {
		kb = rate.NewLimiter(l.keyRate, l.keyBurst)
		l.keys.Add(key, kb)
	}
	pb, ok := l.projects.Get(project)
	if !ok {
		pb = rate.NewLimiter(l.projectRate, l.projectBurst)
		l.projects.Add(project, pb)
	}
	l.mu.Unlock()

	kr := kb.ReserveN(now, 1)
	if d := kr.DelayFrom(now); d > 0 {
		kr.CancelAt(now)
		return limited("key", d)
	}
	pr := pb.ReserveN(now, 1)
	if d := pr.DelayFrom(now); d > 0 {
		pr.CancelAt(now)
		kr.CancelAt(now)
		return limited("project", d)
	}
	return nil
}

// limited is the 429 of a bucket that refills in d. scope is what Sentry's
// X-Sentry-Rate-Limits calls it ("key" or "project").
func limited(scope string, d time.Duration) *Error {
	secs := int(math.Ceil(d.Seconds()))
	e := errorf(http.StatusTooManyRequests, "rate_limited", "too many requests for this %s; retry after %ds", scope, secs)
	e.retryAfter = secs
	e.scope = scope
	return e
}

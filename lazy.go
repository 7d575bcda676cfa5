package replayvault

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/replayvault/replayvault/shared/derrors"
)

// buildTimeout bounds building one function's clients.
const buildTimeout = 30 * time.Second

// answerGrace is how long shutdown waits, once no request is in its
// handler, for the framework to write the last answers.
const answerGrace = 250 * time.Millisecond

// errShuttingDown answers requests that arrive after SIGTERM: 503, so
// Pub/Sub redelivers and HTTP callers retry on another instance.
var errShuttingDown = fmt.Errorf("instance shutting down: %w", derrors.Unavailable)

// lazy builds a function's value on first use and tracks the requests using
// it, so that shutdown can wait for them and then release what was built.
// Unlike sync.Once it remembers only success: a failed build is retried on
// the next request, and its error is returned to every request until then.
type lazy[T any] struct {
	name  string
	build func(context.Context) (T, func(), error)

	mu       sync.Mutex
	v        T
	closeFn  func()
	built    bool
	closing  bool
	inFlight sync.WaitGroup
}

func newLazy[T any](name string, build func(context.Context) (T, func(), error)) *lazy[T] {
	l := &lazy[T]{name: name, build: build}
	functionsBuilt = append(functionsBuilt, l)
	return l
}

// acquire returns the value, building it if needed, and a done function the
// caller must call when its request is finished. The error wraps
// derrors.Unavailable.
func (l *lazy[T]) acquire() (T, func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var zero T
	if l.closing {
		return zero, nil, errShuttingDown
	}
	if !l.built {
		// Clients outlive the request that happened to build them.
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		defer cancel()
		v, closeFn, err := l.build(ctx)
		if err != nil {
			return zero, nil, fmt.Errorf("build %s: %w: %w", l.name, derrors.Unavailable, err)
		}
		l.v, l.closeFn, l.built = v, closeFn, true
	}
	l.inFlight.Add(1)
	return l.v, l.inFlight.Done, nil
}

// shutdown refuses new requests, runs drain (which makes held requests
// finish: Pack flushes its batches), waits for the requests in flight until
// ctx ends, then releases the clients.
func (l *lazy[T]) shutdown(ctx context.Context) error {
	l.mu.Lock()
	l.closing = true
	built, v, closeFn := l.built, l.v, l.closeFn
	l.mu.Unlock()
	if !built {
		return nil
	}
	if d, ok := any(v).(interface{ Drain() }); ok {
		d.Drain()
	}
	idle := make(chan struct{})
	go func() {
		l.inFlight.Wait()
		close(idle)
	}()
	var err error
	select {
	case <-idle:
		// net/http sends an answer once its handler has returned: give
		// the last ones time to reach the socket.
		time.Sleep(answerGrace)
	case <-ctx.Done():
		err = fmt.Errorf("%s: requests still in flight at shutdown: %w", l.name, ctx.Err())
	}
	if closeFn != nil {
		closeFn()
	}
	return err
}

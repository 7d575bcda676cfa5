package replayvault

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// shutdownGrace is how long shutdown may take: Cloud Run sends SIGKILL 10 s
// after SIGTERM.
const shutdownGrace = 9 * time.Second

// functionsBuilt lists every function's lazy value, for Shutdown.
var functionsBuilt []interface {
	shutdown(context.Context) error
}

var (
	shutdownOnce sync.Once
	shutdownErr  error
)

// Shutdown stops every function this instance built from taking work,
// drains it (Pack flushes what it holds and answers those requests), waits
// for requests in flight until ctx ends, closes the clients and flushes the
// telemetry. It is safe to
// call more than once and from several goroutines: every call waits for the
// one shutdown and returns its result.
func Shutdown(ctx context.Context) error {
	shutdownOnce.Do(func() {
		var errs []error
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, f := range functionsBuilt {
			wg.Go(func() {
				if err := f.shutdown(ctx); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		// Last, so that the drained flushes' spans and metrics are sent.
		if err := tel.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
		shutdownErr = errors.Join(errs...)
	})
	return shutdownErr
}

// shutdownOnSIGTERM drains the instance when Cloud Run stops it, then
// exits.
func shutdownOnSIGTERM() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	start := time.Now()
	if err := Shutdown(ctx); err != nil {
		slog.Error("shutdown incomplete", "error", err, "duration", time.Since(start))
		os.Exit(1)
	}
	slog.Info("shut down", "duration", time.Since(start))
	os.Exit(0)
}

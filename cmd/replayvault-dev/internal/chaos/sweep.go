package chaos

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/replayvault/replayvault/functions/shred"
	"github.com/replayvault/replayvault/shared/blob"
)

// orphanGrace is the sweeper's ORPHAN_GRACE. It must exceed the longest
// flush of every Pack in a scenario (flushTimeout in process, GCS_TIMEOUT +
// DB_TIMEOUT in a child), as in production; short, so a scenario can wait
// it out.
const (
	orphanGrace  = 4 * time.Second
	flushTimeout = 3 * time.Second
	sweepEvery   = 250 * time.Millisecond
)

// sweeper runs the Shred function's sweep over and over while a scenario
// runs, as the scheduler would (much more often), and then once more past
// the grace to check that no orphan is left.
type sweeper struct {
	svc    *shred.Service
	cancel context.CancelFunc
	done   chan struct{}

	runs, failures         atomic.Int64
	orphans, blobs, shreds atomic.Int64
	mu                     sync.Mutex
	lastErr                error
}

func (e *env) startSweeper(ctx context.Context) *sweeper {
	svc := shred.New(shred.Config{
		OrphanGrace: e.grace, SweepBatch: 500, SweepBudget: time.Minute,
		DeleteParallelism: 8, ProjectShredBudget: time.Minute,
	}, e.db, e.clean, nil)
	ctx, cancel := context.WithCancel(ctx)
	s := &sweeper{svc: svc, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			s.once(ctx)
			select {
			case <-ctx.Done():
				return
			case <-time.After(sweepEvery):
			}
		}
	}()
	return s
}

func (s *sweeper) once(ctx context.Context) (shred.SweepReport, error) {
	rep, err := s.svc.Sweep(ctx)
	s.runs.Add(1)
	s.orphans.Add(rep.OrphansDeleted)
	s.blobs.Add(rep.BlobsDeleted)
	s.shreds.Add(int64(rep.ProjectShredsCompleted))
	if err != nil && ctx.Err() == nil {
		s.failures.Add(1)
		s.mu.Lock()
		s.lastErr = err
		s.mu.Unlock()
	}
	return rep, err
}

func (s *sweeper) stop() {
	s.cancel()
	<-s.done
}

// finish stops the background sweeps, waits out the grace (at most
// orphanGrace), sweeps until a run completes, and counts the objects older
// than the grace left without a blob row: orphans the sweep should have
// deleted.
func (e *env) finish(ctx context.Context, s *sweeper, rep *Report) error {
	s.stop()
	// Every Pack of the scenario has stopped: nothing uploads any more.
	if wait := min(e.grace, orphanGrace) + 200*time.Millisecond; wait > 0 {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var err error
	for range 5 {
		var r shred.SweepReport
		if r, err = s.once(ctx); err == nil && r.Complete {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("final sweep: %w", err)
	}
	var names []string
	cutoff := time.Now().Add(-e.grace)
	if err := e.clean.List(ctx, "", func(o blob.Object) error {
		if o.Created.Before(cutoff) {
			names = append(names, o.Name)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("list objects: %w", err)
	}
	missing, err := e.db.MissingBlobs(ctx, names)
	if err != nil {
		return err
	}
	rep.Sweeps = s.runs.Load()
	rep.SweepFailures = s.failures.Load()
	rep.OrphansSwept = s.orphans.Load()
	rep.OrphansLeft = len(missing)
	if rep.OrphansSwept < int64(e.minOrphans) {
		return fmt.Errorf("the sweep deleted %d orphans; the scenario made %d", rep.OrphansSwept, e.minOrphans)
	}
	return nil
}

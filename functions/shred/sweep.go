package shred

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/replayvault/replayvault/shared/blob"
	"github.com/replayvault/replayvault/shared/segment"
	"github.com/replayvault/replayvault/shared/store"
)

// SweepReport is what one sweep did.
type SweepReport struct {
	// SegmentsExpired are segment rows deleted because their retention
	// passed.
	SegmentsExpired int64 `json:"segments_expired"`
	// BlobsDeleted are objects deleted (with their blob rows) because no
	// segment points into them any more.
	BlobsDeleted int64 `json:"blobs_deleted"`
	// OrphansDeleted are objects deleted that never got a blob row.
	OrphansDeleted int64 `json:"orphans_deleted"`
	// ProjectShredsResumed are unfinished whole-project shreds the sweep
	// carried on; ProjectShredsCompleted of them finished.
	ProjectShredsResumed   int `json:"project_shreds_resumed"`
	ProjectShredsCompleted int `json:"project_shreds_completed"`
	// Compaction is what the compaction pass did; absent when compaction
	// is off (COMPACT_IDLE=0).
	Compaction *CompactReport `json:"compaction,omitempty"`
	// DurationMS is how long the sweep took.
	DurationMS int64 `json:"duration_ms"`
	// Complete is false when the time budget ran out first; the next run
	// carries on.
	Complete bool `json:"complete"`
}

// orphanPage is how many listed objects one database lookup checks.
const orphanPage = 1000

// errBudget stops a listing when the sweep's time budget is spent.
var errBudget = errors.New("sweep budget spent")

// Sweep runs the passes in order, each in bounded batches, until there is
// nothing left to do or the time budget is spent:
//
//  0. project shreds: carry on whole-project shreds that a request left
//     unfinished (its time ran out, or the instance died);
//  1. expire: delete segment rows past their expires_at (destroying their
//     wrapped DEKs);
//  2. compact: re-pack idle replays into one object each (see Compact),
//     with at most half the budget, so the passes after it always run;
//  3. empty blobs: delete blob rows older than the grace that no segment
//     references (expired, shredded or compacted elsewhere), then their
//     objects;
//  4. orphans: delete objects older than the grace that have no blob row
//     (their flush transaction failed).
//
// It is safe alongside packing: a flush writes its object before its
// transaction, always well within the grace, so an object younger than the
// grace is never touched; and a blob row is deleted only by a statement that
// proves no segment row references it. Errors deleting single objects do
// not stop the sweep; they are returned, joined, at the end.
func (s *Service) Sweep(ctx context.Context) (rep SweepReport, err error) {
	start := s.now()
	deadline := start.Add(s.cfg.SweepBudget)
	cutoff := start.Add(-s.cfg.OrphanGrace)
	inBudget := func() bool { return s.now().Before(deadline) }
	var errs []error // object deletes that failed; the sweep goes on
	defer func() {
		rep.DurationMS = s.now().Sub(start).Milliseconds()
		slog.InfoContext(ctx, "sweep", "segments_expired", rep.SegmentsExpired, "blobs_deleted", rep.BlobsDeleted,
			"orphans_deleted", rep.OrphansDeleted, "compaction", rep.Compaction, "complete", rep.Complete, "duration_ms", rep.DurationMS,
			"failed_object_deletes", len(errs))
		s.recordSweep(ctx, rep, start, err)
	}()

	resumed, err := s.db.ResumeProjectShreds(ctx, store.ShredLimits{Batch: s.cfg.SweepBatch, Budget: s.cfg.SweepBudget})
	shredsDone := true
	for _, rc := range resumed {
		rep.ProjectShredsResumed++
		if rc.Complete {
			rep.ProjectShredsCompleted++
		} else {
			shredsDone = false
		}
		slog.InfoContext(ctx, "project shred resumed", "receipt_id", rc.ID, "project_id", rc.ProjectID,
			"segments_shredded", rc.SegmentsShredded, "complete", rc.Complete)
	}
	if err != nil {
		return rep, err
	}

	expired := false
	for !expired && inBudget() {
		n, err := s.db.ExpireSegments(ctx, start, s.cfg.SweepBatch)
		if err != nil {
			return rep, err
		}
		rep.SegmentsExpired += n
		expired = n < int64(s.cfg.SweepBatch)
	}

	// Segment numbers Ingest gave SDK batches matter only while an SDK
	// may retry one.
	forgotten := false
	for !forgotten && inBudget() {
		n, err := s.db.ForgetIngestBatches(ctx, start.Add(-store.IngestBatchMemory), s.cfg.SweepBatch)
		if err != nil {
			return rep, err
		}
		forgotten = n < int64(s.cfg.SweepBatch)
	}

	compacted, err := s.compactWithin(ctx, start, &rep)
	if err != nil {
		return rep, err
	}

	// Replay issues: links to replays whose segments all expired go, as
	// on a shred; throttle windows a day old count nothing any more.
	if _, err := s.db.ExpireIssueReplays(ctx, start, s.cfg.SweepBatch); err != nil {
		errs = append(errs, err)
	}
	if _, err := s.db.ExpireIssueThrottle(ctx, start.Add(-24*time.Hour), s.cfg.SweepBatch); err != nil {
		errs = append(errs, err)
	}

	emptied := false
	for !emptied && inBudget() {
		paths, err := s.db.DeleteEmptyBlobs(ctx, cutoff, s.cfg.SweepBatch)
		if err != nil {
			return rep, errors.Join(append(errs, err)...)
		}
		// The rows are gone: delete their objects even if the request is
		// cancelled meanwhile, or they would linger until the lifecycle
		// rule. Each delete is bounded by the store's own timeout.
		n, err := s.deleteObjects(context.WithoutCancel(ctx), paths)
		rep.BlobsDeleted += n
		if err != nil {
			errs = append(errs, err)
		}
		emptied = len(paths) < s.cfg.SweepBatch
	}

	listed, err := s.sweepOrphans(ctx, cutoff, inBudget, &rep, &errs)
	if err != nil {
		return rep, errors.Join(append(errs, err)...)
	}
	rep.Complete = shredsDone && expired && compacted && emptied && listed
	return rep, errors.Join(errs...)
}

// compactWithin runs the compaction pass with half of the sweep's budget.
func (s *Service) compactWithin(ctx context.Context, start time.Time, rep *SweepReport) (bool, error) {
	deadline := start.Add(s.cfg.SweepBudget / 2)
	if !s.now().Before(deadline) {
		return s.cfg.CompactIdle <= 0, nil
	}
	c, complete, err := s.Compact(ctx, deadline)
	if s.cfg.CompactIdle > 0 {
		rep.Compaction = &c
	}
	return complete, err
}

// sweepOrphans lists the object prefixes that may hold orphans and deletes
// the objects older than cutoff that have no blob row. It reports whether it
// listed everything within the budget.
func (s *Service) sweepOrphans(ctx context.Context, cutoff time.Time, inBudget func() bool, rep *SweepReport, errs *[]error) (bool, error) {
	var page []string
	check := func() error {
		if len(page) == 0 {
			return nil
		}
		missing, err := s.db.MissingBlobs(ctx, page)
		page = page[:0]
		if err != nil {
			return err
		}
		n, err := s.deleteObjects(ctx, missing)
		rep.OrphansDeleted += n
		if err != nil {
			*errs = append(*errs, err)
		}
		return nil
	}
	for _, prefix := range s.orphanPrefixes(cutoff) {
		err := s.blobs.List(ctx, prefix, func(o blob.Object) error {
			if !inBudget() {
				return errBudget
			}
			if !o.Created.Before(cutoff) || !isBlobName(o.Name) {
				return nil
			}
			page = append(page, o.Name)
			if len(page) >= orphanPage {
				return check()
			}
			return nil
		})
		if errors.Is(err, errBudget) {
			return false, check()
		}
		if err != nil {
			return false, fmt.Errorf("list orphans: %w", err)
		}
	}
	return true, check()
}

// orphanPrefixes returns the prefixes to list: with a lookback, one per
// retention class and UTC day from cutoff-lookback to today (objects are
// named r{days}/yyyy/mm/dd/uuid by flush time); without, the whole bucket.
func (s *Service) orphanPrefixes(cutoff time.Time) []string {
	if s.cfg.OrphanLookback <= 0 {
		return []string{""}
	}
	first := cutoff.Add(-s.cfg.OrphanLookback).UTC().Truncate(24 * time.Hour)
	last := s.now().UTC()
	var prefixes []string
	for _, days := range segment.RetentionClasses {
		for d := first; !d.After(last); d = d.Add(24 * time.Hour) {
			prefixes = append(prefixes, fmt.Sprintf("r%d/%04d/%02d/%02d/", days, d.Year(), d.Month(), d.Day()))
		}
	}
	return prefixes
}

// isBlobName reports whether name looks like a packed object, r{days}/...:
// when the whole bucket is listed, anything else in it is left alone.
func isBlobName(name string) bool {
	rest, ok := strings.CutPrefix(name, "r")
	if !ok {
		return false
	}
	digits, _, ok := strings.Cut(rest, "/")
	if !ok || digits == "" {
		return false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// deleteObjects deletes names with bounded parallelism and returns how many
// it deleted; failures are joined into the error, the rest go on.
func (s *Service) deleteObjects(ctx context.Context, names []string) (int64, error) {
	var (
		mu      sync.Mutex
		deleted int64
		errs    []error
		wg      sync.WaitGroup
		sem     = make(chan struct{}, s.cfg.DeleteParallelism)
	)
	for _, name := range names {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			err := s.blobs.Delete(ctx, name)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			deleted++
		}()
	}
	wg.Wait()
	return deleted, errors.Join(errs...)
}

// recordSweep records one run's work, outcome and backlog (counted only
// when the run stopped early; a complete run left none).
func (s *Service) recordSweep(ctx context.Context, rep SweepReport, start time.Time, err error) {
	if s.metrics == nil {
		return
	}
	outcome, backlog := "done", int64(0)
	switch {
	case err != nil:
		outcome, backlog = "error", -1
	case !rep.Complete:
		outcome = "budget"
		n, berr := s.db.SweepBacklog(context.WithoutCancel(ctx), start)
		if berr != nil {
			slog.WarnContext(ctx, "sweep backlog unknown", "error", berr)
			n = -1
		}
		backlog = n
	}
	s.metrics.Swept(ctx, map[string]int64{
		"segments_expired": rep.SegmentsExpired,
		"blobs_deleted":    rep.BlobsDeleted,
		"orphans_deleted":  rep.OrphansDeleted,
	}, backlog, outcome)
}

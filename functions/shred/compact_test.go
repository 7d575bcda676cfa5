package shred

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/replayvault/replayvault/functions/packer"
	"github.com/replayvault/replayvault/shared/workload"
)

func compactConfig() Config {
	cfg := testConfig()
	cfg.CompactIdle = time.Millisecond
	cfg.CompactMaxBytes = 64 << 20
	return cfg
}

// packSpread stores r's segments a few at a time, each group in its own
// batch, so the replay lies in several objects as a live replay does.
func (e *env) packSpread(t *testing.T, r *replay, groups int) {
	t.Helper()
	n := len(r.raw)
	for g := range groups {
		lo, hi := g*n/groups, (g+1)*n/groups
		// Each group is packed alone; message ids carry the segment id.
		var wg sync.WaitGroup
		for s := lo; s < hi; s++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := e.packer.Ingest(context.Background(), r.message(s))
				if err != nil || res != packer.Stored {
					t.Errorf("ingest %s/%d: %v, %v", r.id, s, res, err)
				}
			}()
		}
		wg.Wait()
	}
}

// onePieceRows reports whether r's rows lie back to back in one object.
func (e *env) onePieceRows(t *testing.T, r *replay) (string, bool) {
	t.Helper()
	rows := e.segments(t, r.project, r.id)
	for i := 1; i < len(rows); i++ {
		if rows[i].path != rows[0].path || rows[i].start != rows[i-1].stop {
			return "", false
		}
	}
	if len(rows) == 0 {
		return "", false
	}
	return rows[0].path, true
}

// TestCompact re-packs replays spread over several objects, checks that
// each then lies in one object and reads back byte for byte, that a second
// pass changes nothing, and that the sweep frees the old objects only once
// the grace has passed, while the replays stay readable.
func TestCompact(t *testing.T) {
	e := newEnv(t, compactConfig(), 20*time.Millisecond)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(21, 22))
	a, b := newReplay(rng, 7, 12), newReplay(rng, 8, 7)
	e.packSpread(t, a, 4)
	e.packSpread(t, b, 3)
	before := objects(t, e)
	if len(before) < 7 {
		t.Fatalf("%d objects; the test wants the replays spread", len(before))
	}
	// Old enough for the sweep, were they empty: only the release time
	// keeps them.
	if _, err := e.d.DB.Pool.Exec(ctx, `UPDATE blobs SET created_at = now() - interval '2 hours'`); err != nil {
		t.Fatal(err)
	}

	rep, complete, err := e.svc.Compact(ctx, time.Now().Add(time.Minute))
	if err != nil || !complete {
		t.Fatalf("compact: %+v, %v, %v", rep, complete, err)
	}
	if rep.ReplaysCompacted != 2 || rep.SegmentsMoved != 19 || rep.ReplaysFailed != 0 {
		t.Errorf("report %+v; want 2 replays and 19 segments", rep)
	}
	paths := map[string]bool{}
	for _, r := range []*replay{a, b} {
		p, ok := e.onePieceRows(t, r)
		if !ok {
			t.Fatalf("replay %s is not in one piece after compaction", r.id)
		}
		paths[p] = true
		e.readBack(t, r)
	}

	// Idempotent: nothing more to do.
	rep, _, err = e.svc.Compact(ctx, time.Now().Add(time.Minute))
	if err != nil || rep != (CompactReport{}) {
		t.Errorf("second compact: %+v, %v; want nothing done", rep, err)
	}

	// Within the grace the old objects stay (a read may be using them).
	if _, err := e.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if got := objects(t, e); len(got) != len(before)+2 {
		t.Errorf("%d objects right after compaction, want %d (old ones kept for the grace)", len(got), len(before)+2)
	}
	// Past the grace only the compacted objects remain.
	e.svc.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if _, err := e.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	got := objects(t, e)
	slices.Sort(got)
	want := []string{}
	for p := range paths {
		want = append(want, p)
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("objects after the sweep: %v, want the compacted ones %v", got, want)
	}
	for _, r := range []*replay{a, b} {
		e.readBack(t, r)
	}
}

// TestCompactRaces runs compaction against shreds and late segments of the
// same replay over 50 rounds. In every round: a shredded replay has no
// segment row (no key) afterwards, and none comes back from the compaction
// or a redelivery; a surviving replay reads back byte for byte, every
// segment acked as stored included, and the next pass leaves it in one
// piece.
func TestCompactRaces(t *testing.T) {
	const rounds = 50
	e := newEnv(t, compactConfig(), 5*time.Millisecond)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(23, 24))
	var shreds, lateStored, compactedFirst int
	for round := range rounds {
		r := newReplay(rng, 9, 6)
		e.packSpread(t, r, 3)
		// Late segments, ready to send.
		late := 2 + rng.IntN(3)
		for s := range late {
			r.raw = append(r.raw, workload.Segment(rng, 6+s, 1_700_000_100_000+int64(s)*10_000, 800))
		}
		shred := rng.IntN(2) == 0
		delays := make([]time.Duration, late)
		for s := range delays {
			delays[s] = time.Duration(rng.IntN(8)) * time.Millisecond
		}
		var (
			wg      sync.WaitGroup
			results = make([]packer.Result, late)
			rep     CompactReport
			cerr    error
		)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, _, cerr = e.svc.Compact(ctx, time.Now().Add(time.Minute))
		}()
		for s := range late {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(delays[s])
				res, err := e.packer.Ingest(ctx, r.message(6+s))
				if err != nil {
					t.Errorf("round %d: late segment: %v", round, err)
				}
				results[s] = res
			}()
		}
		if shred {
			time.Sleep(time.Duration(rng.IntN(10)) * time.Millisecond)
			if _, err := e.d.DB.ShredReplays(ctx, r.project, []uuid.UUID{r.id}, "test"); err != nil {
				t.Fatal(err)
			}
			if rows := e.segments(t, r.project, r.id); len(rows) != 0 {
				t.Fatalf("round %d: %d segment rows right after the shred", round, len(rows))
			}
		}
		wg.Wait()
		if cerr != nil || rep.ReplaysFailed != 0 {
			t.Fatalf("round %d: compact: %+v, %v", round, rep, cerr)
		}
		if rep.ReplaysCompacted > 0 {
			compactedFirst++
		}

		// Which segments must survive.
		var keep []int
		for s := range 6 {
			keep = append(keep, s)
		}
		for s, res := range results {
			switch {
			case res == packer.Stored:
				keep = append(keep, 6+s)
				lateStored++
			case res == packer.Shredded && shred:
			default:
				t.Errorf("round %d: late segment %d: %v", round, 6+s, res)
			}
		}
		if shred {
			shreds++
			// Again, after everything: no compaction or redelivery brings
			// anything back.
			if _, _, err := e.svc.Compact(ctx, time.Now().Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			e.pack(t, packer.Shredded, r)
			if rows := e.segments(t, r.project, r.id); len(rows) != 0 {
				t.Fatalf("round %d: %d segment rows of a shredded replay", round, len(rows))
			}
			continue
		}
		// Not shredded: every late segment was stored, so the replay is
		// segments 0..6+late-1.
		if len(keep) != 6+late {
			t.Fatalf("round %d: %d segments stored, want %d", round, len(keep), 6+late)
		}
		survivor := &replay{project: r.project, id: r.id, raw: r.raw[:6+late]}
		e.readBack(t, survivor)
		if _, _, err := e.svc.Compact(ctx, time.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if _, ok := e.onePieceRows(t, r); !ok {
			t.Fatalf("round %d: not in one piece after the pass that followed the late segments", round)
		}
		e.readBack(t, survivor)
	}
	t.Logf("%d rounds: %d shredded, %d late segments stored, %d compactions won their race", rounds, shreds, lateStored, compactedFirst)
	if shreds == 0 || shreds == rounds || lateStored == 0 || compactedFirst == 0 {
		t.Errorf("the races were one-sided")
	}
}

// TestCompactCrash stops a compaction after each step and checks that the
// replay reads back byte for byte at once, after a sweep past the grace
// (which removes what the stopped run left), and after a compaction that
// then runs to the end.
func TestCompactCrash(t *testing.T) {
	for _, step := range []compactStep{stepRead, stepUpload, stepCommit} {
		t.Run(string(step), func(t *testing.T) {
			e := newEnv(t, compactConfig(), 20*time.Millisecond)
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(25, 26))
			r := newReplay(rng, 7, 9)
			e.packSpread(t, r, 3)
			spread := len(objects(t, e))

			e.svc.crashAt = func(s compactStep) error {
				if s == step {
					return errCrash
				}
				return nil
			}
			rep, _, err := e.svc.Compact(ctx, time.Now().Add(time.Minute))
			if err != nil || rep.ReplaysFailed != 1 {
				t.Fatalf("compact with a crash after %s: %+v, %v", step, rep, err)
			}
			e.readBack(t, r)
			wantObjects := spread
			if step != stepRead {
				wantObjects++
			}
			if n := len(objects(t, e)); n != wantObjects {
				t.Errorf("%d objects after the crash, want %d", n, wantObjects)
			}

			// Past the grace the sweep removes the leftovers: an orphan
			// (upload) or the old objects (commit).
			e.svc.crashAt = nil
			e.svc.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
			if _, err := e.svc.Sweep(ctx); err != nil {
				t.Fatal(err)
			}
			e.readBack(t, r)
			// After a crash before the commit the sweep's own compaction
			// pass re-packs the replay first; either way the old objects
			// are then freed.
			if n := len(objects(t, e)); n != 1 {
				t.Errorf("%d objects after the sweep, want the compacted one", n)
			}
			if _, ok := e.onePieceRows(t, r); !ok {
				t.Errorf("not in one piece")
			}
			e.readBack(t, r)
		})
	}
}
